//! `kakeru`: the one binary's library side. [`node`] composes the roles of one process over one bus
//! and one database; `main.rs` parses the command line and calls it.

pub mod node;
