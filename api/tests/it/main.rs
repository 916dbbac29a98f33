//! API integration tests: each test runs against SQLite and against PostgreSQL.

mod access;
mod agents;
mod browser;
mod browser_proc;
mod callbacks;
mod callbacks_ui;
mod console;
mod console_ui;
mod harness;
mod imports;
mod model;
mod park;
mod phone;
mod recordings;
mod reports;
mod security;
mod wallboard;
