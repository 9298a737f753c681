#[taskflow::task(retries = 3, delay = "1 second")]
pub async fn send_welcome(user_id: u64) {
    let _ = user_id;
}

fn main() {}
