#[taskflow::task(retries = 3, persist, retries = 5)]
pub async fn send_welcome(user_id: u64) {
    let _ = user_id;
}

fn main() {}
