//! A real SMTP server for the mail tests: a small blocking sink on a port of its own that speaks enough
//! SMTP for lettre (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT), keeps each message as received, and can be
//! switched "down" (it then answers 421 to every connection, as a server in maintenance does).
//!
//! `with_mail` is a config tweak for `on_both!`: it starts a sink and points `LATCHKEY_SMTP_URL` at it;
//! `Sink::of(app)` finds it again from the app's configuration.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Write},
    net::{TcpListener, TcpStream},
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use crate::helpers::TestApp;

#[derive(Default)]
pub struct Sink {
    messages: Mutex<Vec<String>>,
    down: AtomicBool,
}

fn sinks() -> &'static Mutex<HashMap<u16, Arc<Sink>>> {
    static SINKS: OnceLock<Mutex<HashMap<u16, Arc<Sink>>>> = OnceLock::new();
    SINKS.get_or_init(Default::default)
}

pub fn with_mail(config: &mut latchkey::config::Config) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sink = Arc::new(Sink::default());
    sinks().lock().unwrap().insert(port, sink.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let sink = sink.clone();
            std::thread::spawn(move || {
                let _ = serve(&sink, stream);
            });
        }
    });
    config.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
}

fn serve(sink: &Sink, stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut out = stream.try_clone()?;
    if sink.down.load(Ordering::SeqCst) {
        return out.write_all(b"421 sink.test Service not available, try later\r\n");
    }
    out.write_all(b"220 sink.test ESMTP\r\n")?;
    let mut lines = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" | "HELO" => out.write_all(b"250 sink.test\r\n")?,
            // A server that went down meanwhile ends the connections its clients kept open.
            "MAIL" if sink.down.load(Ordering::SeqCst) => {
                return out.write_all(b"421 sink.test Service not available, closing\r\n");
            }
            "MAIL" | "RCPT" | "RSET" | "NOOP" => out.write_all(b"250 OK\r\n")?,
            "DATA" => {
                out.write_all(b"354 go on\r\n")?;
                let mut message = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line)? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    message.push_str(line.strip_prefix('.').filter(|_| line.starts_with("..")).unwrap_or(&line));
                }
                sink.messages.lock().unwrap().push(message);
                out.write_all(b"250 queued\r\n")?;
            }
            "QUIT" => return out.write_all(b"221 bye\r\n"),
            _ => out.write_all(b"502 not here\r\n")?,
        }
    }
}

impl Sink {
    pub fn of(app: &TestApp) -> Arc<Sink> {
        let url = app.services.config.smtp_url.as_deref().expect("the app was started with_mail");
        let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
        sinks().lock().unwrap()[&port].clone()
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// The messages whose subject contains `about`.
    fn about(&self, about: &str) -> Vec<Message> {
        let all = self.messages.lock().unwrap();
        all.iter()
            .map(|raw| Message(raw.clone()))
            .filter(|m| m.header("Subject").is_some_and(|s| s.contains(about)))
            .collect()
    }

    pub fn count(&self, about: &str) -> usize {
        self.about(about).len()
    }

    /// How many messages about `about` went to `to`.
    pub fn count_to(&self, to: &str, about: &str) -> usize {
        self.about(about).iter().filter(|m| m.header("To").is_some_and(|t| t.contains(to))).count()
    }

    /// The `n`th message (from 0) whose subject contains `about`, waiting up to 5 s for it.
    pub async fn message(&self, n: usize, about: &str) -> Message {
        for _ in 0..100 {
            if let Some(message) = self.about(about).into_iter().nth(n) {
                return message;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no message number {n} about {about:?} within 5 s (got {})", self.count(about));
    }
}

/// A message as the server received it.
pub struct Message(pub String);

impl Message {
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.0.split("\r\n\r\n").next().unwrap_or_default();
        let prefix = format!("{}:", name.to_ascii_lowercase());
        head.lines().find(|l| l.to_ascii_lowercase().starts_with(&prefix)).map(|l| l[prefix.len()..].trim().to_string())
    }

    /// The body with quoted-printable soft line breaks and `=3D` undone, enough to read links.
    pub fn text(&self) -> String {
        self.0.replace("=\r\n", "").replace("=3D", "=")
    }

    /// The first link into `path` on `base`, as it appears in the mail.
    pub fn link(&self, base: &str, path: &str) -> String {
        let text = self.text();
        let start = format!("{base}{path}");
        let at = text.find(&start).unwrap_or_else(|| panic!("no {start} link in:\n{text}"));
        text[at..].split(|c: char| c.is_whitespace() || c == '"' || c == '<').next().unwrap().to_string()
    }
}
