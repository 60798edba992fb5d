//! Snapshots of every command's `--help` and of the usage errors found before anything is
//! sent (`tests/cmd/*.md`; `TRYCMD=overwrite cargo test -p solace-cli --test help` rewrites
//! them after a deliberate change).

#[test]
fn help_and_usage_errors_match_their_snapshots() {
    trycmd::TestCases::new()
        .env("COLUMNS", "100")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .case("tests/cmd/*.md");
}
