#[taskflow::task]
pub async fn fetch_names(limit: usize) -> Vec<std::rc::Rc<str>> {
    let _ = limit;
    Vec::new()
}

fn main() {}
