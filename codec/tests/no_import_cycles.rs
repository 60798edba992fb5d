//! The codec's modules import each other without circles (see `support/import_graph.rs`,
//! which other crates include to check theirs).

use std::path::Path;

#[path = "support/import_graph.rs"]
mod import_graph;

#[test]
fn codec_modules_import_without_circles() {
    let graph = import_graph::assert_acyclic(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    eprint!("{}", import_graph::render(&graph));
    // The layout owns the format and needs nothing else of the codec.
    assert!(graph["layout"].is_empty(), "{:?}", graph["layout"]);
}
