pub struct Mailer;

impl Mailer {
    #[taskflow::task]
    pub async fn send(&self, user_id: u64) {
        let _ = user_id;
    }
}

fn main() {}
