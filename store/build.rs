// `sqlx::migrate!` embeds the migrations when `store` compiles; without this, a new migration file
// would not rebuild the crate and tests would run on the old schema.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
