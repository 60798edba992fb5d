//! What the Lambda binaries are built from: `cargo tree` of this package's normal
//! dependencies (what `cargo build -p solace-functions --release` compiles) holds no
//! operator-tool crates (clap, anyhow) and none of the support features (the codec's
//! `sample` and `fuzzing`, the pipeline's `sim`, this crate's `mem`).

use std::process::Command;

fn tree(format: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "tree",
            "-p",
            "solace-functions",
            "-e",
            "normal",
            "--locked",
            "--offline",
            "--prefix",
            "none",
            "-f",
            format,
        ])
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn the_lambda_crate_depends_on_no_operator_tool_crate() {
    let packages = tree("{p}");
    let names: Vec<&str> = packages
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        names.contains(&"aws-sdk-dynamodb"),
        "the tree is read: {names:?}"
    );
    for banned in [
        "clap",
        "anyhow",
        "indicatif",
        "solace-cli",
        "solace-testkit",
    ] {
        assert!(
            !names.contains(&banned),
            "{banned} is a dependency of the Lambda crate"
        );
    }
}

#[test]
fn the_lambda_crate_builds_no_support_module() {
    let features = tree("{p} [{f}]");
    let ours: Vec<&str> = features
        .lines()
        .filter(|l| l.starts_with("solace-"))
        .collect();
    assert!(
        ours.iter().any(|l| l.starts_with("solace-codec")),
        "{ours:?}"
    );
    for line in ours {
        let enabled = line
            .rsplit_once('[')
            .map_or("", |(_, f)| f.trim_end_matches(']'));
        for support in ["sample", "fuzzing", "sim", "mem"] {
            assert!(
                !enabled.split(',').any(|f| f == support),
                "{line}: feature {support} is on in the production build"
            );
        }
    }
}
