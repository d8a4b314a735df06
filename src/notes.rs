//! One-line notes the library makes as it reads and trains: a guess it made (a layout, a likelihood, a header) or
//! what it left out. They go to stderr unless a front end [`capture`]s them to show its own way, as Python's
//! `warnings` go to stderr unless a program catches them; progress goes to an observer instead
//! (the trainer's `Observer`). Nothing here imports the rest of the crate, so every layer may say what it guessed.

/// `eprintln!` that never panics: a status line that cannot be written (stderr on a full disk) must not end a
/// run or cost it its result. Control characters are escaped ([`printable`]): the line may carry a file or
/// class name, and a name holding `ESC[2J` must not clear the user's terminal.
macro_rules! say {
    ($($arg:tt)*) => {{
        $crate::notes::say_line(&format!($($arg)*));
    }};
}

pub(crate) use say;

std::thread_local! {
    /// Lines [`say!`] keeps instead of printing, while [`capture`] runs on this thread.
    static CAPTURED: std::cell::RefCell<Option<Vec<String>>> = const { std::cell::RefCell::new(None) };
}

/// Writes one status line to stderr (escaped by [`printable`]), or keeps it for [`capture`].
pub fn say_line(line: &str) {
    use std::io::Write as _;
    let line = printable(line);
    let kept = CAPTURED.with(|c| match c.borrow_mut().as_mut() {
        Some(lines) => {
            lines.push(line.to_string());
            true
        }
        None => false,
    });
    if !kept {
        let _ = writeln!(std::io::stderr(), "{line}");
    }
}

/// Runs `f`, keeping the status lines it says on this thread (how data was read, what was left out) instead of
/// printing them, for a front end that shows them its own way (Python writes them to `sys.stderr`, which a
/// notebook shows).
pub fn capture<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
    let outer = CAPTURED.with(|c| c.borrow_mut().replace(Vec::new()));
    let r = f();
    let lines = CAPTURED.with(|c| std::mem::replace(&mut *c.borrow_mut(), outer));
    (r, lines.unwrap_or_default())
}

/// `s` with every control character (newlines and tabs too: a message is one line) written as a Rust escape,
/// `\u{1b}`, so that names from files and folders cannot move the cursor, clear the screen or split a line.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for ch in s.chars() {
        if ch.is_control() {
            out.extend(ch.escape_default());
        } else {
            out.push(ch);
        }
    }
    std::borrow::Cow::Owned(out)
}
