#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
}

#[taskflow::task]
pub async fn send_mail(mail: Mail) {
    let _ = mail;
}

fn main() {}
