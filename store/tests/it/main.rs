//! Tests of the store crate's place in the workspace.

mod sql_in_store;
