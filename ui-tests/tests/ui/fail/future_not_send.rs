use std::rc::Rc;

async fn tick() {}

#[taskflow::task]
pub async fn refresh(user_id: u64) {
    let cache = Rc::new(user_id);
    tick().await;
    let _ = cache;
}

fn main() {}
