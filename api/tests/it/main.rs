//! API integration tests: each test runs against SQLite and against PostgreSQL.

mod access;
mod agents;
mod browser;
mod harness;
mod imports;
mod model;
mod recordings;
mod wallboard;
