#[taskflow::task]
pub struct SendWelcome {
    pub user_id: u64,
}

fn main() {}
