#[taskflow::task(retries = 3, retry_delay = "1s")]
pub async fn send_welcome(user_id: u64) {
    let _ = user_id;
}

fn main() {}
