//! Tests of the `kakeru` binary itself: each starts real role processes on port 0 over a fresh
//! SQLite file and talks to them over HTTP.

mod bench;
mod demo;
mod deploy;
mod desktop;
mod metrics;
mod node;
mod process;
