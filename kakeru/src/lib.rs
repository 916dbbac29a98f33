//! `kakeru`: the one binary's library side. [`node`] composes the roles of one process over one bus
//! and one database; [`demo`] runs a whole simulated floor on it (`kakeru demo`); `main.rs` parses
//! the command line and calls them.

pub mod demo;
pub mod node;
pub mod sim;
