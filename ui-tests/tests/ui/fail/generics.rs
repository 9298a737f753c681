#[taskflow::task]
pub async fn send<T: serde::Serialize>(payload: T) {
    let _ = payload;
}

fn main() {}
