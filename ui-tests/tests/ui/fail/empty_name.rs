#[taskflow::task(name = "")]
pub async fn send_welcome(user_id: u64) {
    let _ = user_id;
}

fn main() {}
