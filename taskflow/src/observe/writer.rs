//! A dedicated thread that writes lines to a blocking sink (a file, stdout), so that the logging
//! observers never block the async runtime.

use std::io;

use tokio::sync::{mpsc, oneshot};

/// Lines queued for the writer thread before a sender waits.
const CAPACITY: usize = 1_024;

/// Where the writer thread puts lines.
pub(crate) trait Sink: Send + 'static {
    /// Writes one line (the newline is added here).
    fn write_line(&mut self, line: &str) -> io::Result<()>;
    /// Pushes buffered lines to the OS.
    fn flush(&mut self) -> io::Result<()>;
}

impl Sink for Box<dyn io::Write + Send> {
    fn write_line(&mut self, line: &str) -> io::Result<()> {
        self.write_all(line.as_bytes())?;
        self.write_all(b"\n")
    }

    fn flush(&mut self) -> io::Result<()> {
        io::Write::flush(self)
    }
}

enum Command {
    Line(String),
    Flush(oneshot::Sender<()>),
}

/// The sending side of a writer thread; the thread ends when this is dropped.
#[derive(Debug, Clone)]
pub(crate) struct LineWriter {
    sender: mpsc::Sender<Command>,
}

impl LineWriter {
    /// Starts a thread named `taskflow-{name}` writing to `sink`.
    pub(crate) fn spawn(name: &str, mut sink: impl Sink) -> io::Result<Self> {
        let (sender, mut receiver) = mpsc::channel::<Command>(CAPACITY);
        let label = name.to_owned();
        std::thread::Builder::new()
            .name(format!("taskflow-{name}"))
            .spawn(move || {
                let mut errors = ErrorReport::new(label);
                while let Some(command) = receiver.blocking_recv() {
                    let mut next = Some(command);
                    // Write everything already queued, then flush once, so `tail -f` sees the
                    // lines promptly without a syscall per line under load.
                    while let Some(command) = next {
                        match command {
                            Command::Line(line) => errors.check(sink.write_line(&line)),
                            Command::Flush(done) => {
                                errors.check(sink.flush());
                                let _ = done.send(());
                            }
                        }
                        next = receiver.try_recv().ok();
                    }
                    errors.check(sink.flush());
                }
                errors.check(sink.flush());
            })?;
        Ok(Self { sender })
    }

    /// Queues a line; waits while the thread is 1,024 lines behind.
    pub(crate) async fn send(&self, line: String) {
        let _ = self.sender.send(Command::Line(line)).await;
    }

    /// Waits until every line queued before this call is written and flushed.
    pub(crate) async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.sender.send(Command::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

/// Reports write errors without flooding: the first of a run of failures, and the recovery.
struct ErrorReport {
    name: String,
    failing: bool,
    lost: u64,
}

impl ErrorReport {
    fn new(name: String) -> Self {
        Self {
            name,
            failing: false,
            lost: 0,
        }
    }

    fn check(&mut self, result: io::Result<()>) {
        match result {
            Ok(()) if self.failing => {
                tracing::warn!(target: "taskflow::observe", writer = %self.name, lost = self.lost, "log writes work again");
                self.failing = false;
                self.lost = 0;
            }
            Ok(()) => {}
            Err(error) => {
                if !self.failing {
                    tracing::warn!(target: "taskflow::observe", writer = %self.name, %error, "cannot write task log lines");
                }
                self.failing = true;
                self.lost += 1;
            }
        }
    }
}
