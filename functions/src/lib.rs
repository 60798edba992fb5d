//! Solace's functions and the `solace` command.
//!
//! # Layout
//! - [`cli_batch`]: `solace batch encode|decode`.

pub mod cli_batch;
