//! The pipeline's modules import each other without circles (the check is the codec's
//! `tests/support/import_graph.rs`).

use std::path::Path;

#[path = "../../codec/tests/support/import_graph.rs"]
mod import_graph;

#[test]
fn pipeline_modules_import_without_circles() {
    let graph = import_graph::assert_acyclic(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    eprint!("{}", import_graph::render(&graph));
    // Restore borrows nothing from backup, nor backup from restore.
    assert!(!graph["restore"].contains("backup"));
    assert!(!graph["backup"].contains("restore"));
}
