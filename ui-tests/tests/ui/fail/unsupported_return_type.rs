#[taskflow::task]
pub fn count_users() -> u64 {
    42
}

fn main() {}
