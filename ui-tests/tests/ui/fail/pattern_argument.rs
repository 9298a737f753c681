#[taskflow::task]
pub fn add((a, b): (u32, u32)) -> Result<u32, String> {
    Ok(a + b)
}

fn main() {}
