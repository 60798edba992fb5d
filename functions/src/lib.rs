//! Solace functions.
