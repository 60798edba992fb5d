//! This crate's modules import each other without circles (the checker is the codec's
//! `tests/support/import_graph.rs`, shared by every crate's test).

use std::path::Path;

#[path = "../../codec/tests/support/import_graph.rs"]
mod import_graph;

#[test]
fn modules_import_without_circles() {
    let graph = import_graph::assert_acyclic(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(!graph.is_empty(), "the modules were read");
    eprint!("{}", import_graph::render(&graph));
}
