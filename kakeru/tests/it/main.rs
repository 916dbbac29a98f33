//! Tests of the `kakeru` binary itself: each starts real role processes on port 0 over a fresh
//! SQLite file and talks to them over HTTP.

mod cli;
mod console;
mod demo;
mod deploy;
mod desktop;
mod dialer;
mod metrics;
mod netns;
mod node;
mod park;
mod phone;
mod process;
mod reports;
mod security;
mod sim;
mod supervise;
