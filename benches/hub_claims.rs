//! Hub claim benchmark (filled in later).
fn main() {}
