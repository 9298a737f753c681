#[taskflow::task]
pub fn log_line(line: impl std::fmt::Display) {
    println!("{line}");
}

fn main() {}
