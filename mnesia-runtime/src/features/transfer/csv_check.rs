//! A check of CSV quoting as the input goes by. The `csv` crate reads leniently: a quoted
//! field never closed runs to the end of the input, taking the rows after it into one cell,
//! and text after a closing quote is glued to the field. An import would then take a
//! malformed file for fewer, wrong records. [`Checked`] watches the bytes the reader takes
//! and keeps the first such fault, which the import reports with its line.

use std::io::{self, Read};

/// Where the reader is in the CSV syntax.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// At the start of a field.
    FieldStart,
    /// In a field that does not start with a quote (a quote in it is kept as it is).
    Unquoted,
    /// In a quoted field.
    Quoted,
    /// Just after a quote inside a quoted field: its end, or the first of two.
    QuoteInQuoted,
}

/// A reader that checks the quoting of the CSV read through it (RFC 4180's, as the `csv`
/// crate writes it: `"` quotes a field, `""` is a quote inside one).
pub(crate) struct Checked<R> {
    inner: R,
    state: State,
    /// The line being read (1-based, as the `csv` crate counts).
    line: u64,
    /// The line the quoted field being read started on.
    quoted_from: u64,
    fault: Option<(u64, &'static str)>,
    /// Bytes seen so far, up to 3: a UTF-8 byte order mark at the start is skipped, as the
    /// `csv` crate skips it.
    seen: u8,
}

impl<R> Checked<R> {
    pub(crate) fn new(inner: R) -> Self {
        Checked { inner, state: State::FieldStart, line: 1, quoted_from: 1, fault: None, seen: 0 }
    }

    /// The first fault found so far: its line and what is wrong.
    pub(crate) fn fault(&self) -> Option<(u64, &'static str)> {
        self.fault
    }

    fn step(&mut self, b: u8) {
        if self.seen < 3 {
            self.seen += 1;
            if b == [0xEF, 0xBB, 0xBF][usize::from(self.seen - 1)]
                && self.line == 1
                && self.state == State::FieldStart
            {
                // (A BOM's bytes, or the start of a cell whose first bytes match them:
                // neither is a quote, a separator or a line end, so nothing is missed.)
                return;
            }
            self.seen = 3;
        }
        let next = match (self.state, b) {
            (State::Quoted, b'"') => State::QuoteInQuoted,
            (State::Quoted, _) => State::Quoted,
            (State::QuoteInQuoted, b'"') => State::Quoted,
            (State::FieldStart, b'"') => {
                self.quoted_from = self.line;
                State::Quoted
            }
            (_, b',' | b'\r' | b'\n') => State::FieldStart,
            (State::QuoteInQuoted, _) => {
                // (At the line the quoted field starts on: where it went wrong, when a quote
                // left open took the next lines in.)
                if self.fault.is_none() {
                    self.fault = Some((
                        self.quoted_from,
                        "text after the closing quote of a field (a quote inside a quoted field is written twice)",
                    ));
                }
                State::Unquoted
            }
            (_, _) => State::Unquoted,
        };
        if b == b'\n' {
            self.line += 1;
        }
        self.state = next;
    }

    /// Steps through `bytes`, skipping the runs that cannot change the state: in an
    /// unquoted field, everything up to a separator or a line end; in a quoted one,
    /// everything up to a quote or a line end (which is counted).
    fn scan(&mut self, bytes: &[u8]) {
        let mut at = 0;
        while at < bytes.len() {
            if self.seen >= 3 {
                let rest = &bytes[at..];
                let skip = match self.state {
                    State::Unquoted => memchr::memchr3(b',', b'\r', b'\n', rest),
                    State::Quoted => memchr::memchr2(b'"', b'\n', rest),
                    State::FieldStart | State::QuoteInQuoted => Some(0),
                };
                match skip {
                    Some(k) => at += k,
                    None => return,
                }
            }
            self.step(bytes[at]);
            at += 1;
        }
    }
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && self.state == State::Quoted && self.fault.is_none() {
            self.fault =
                Some((self.quoted_from, "a quoted field is never closed: it runs to the end of the input"));
        }
        self.scan(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault_of(input: &str) -> Option<(u64, &'static str)> {
        let mut c = Checked::new(input.as_bytes());
        let mut out = Vec::new();
        c.read_to_end(&mut out).expect("read");
        assert_eq!(out, input.as_bytes(), "the bytes pass unchanged");
        c.fault()
    }

    #[test]
    fn well_formed_csv_passes() {
        for ok in [
            "id,title\n1,a\n",
            "id,title\r\n1,\"a, b\"\r\n2,\"say \"\"hi\"\"\"\n",
            "id,title\n1,\"two\nlines\"\n",
            "id,title\n1,5\" screen\n",
            "id,title\n1,\"\"\n2,\n",
            "\u{feff}id,title\n1,\"a\"\n",
            "",
        ] {
            assert_eq!(fault_of(ok), None, "{ok:?}");
        }
    }

    #[test]
    fn an_unclosed_quote_and_text_after_a_closing_quote_are_faults_with_their_line() {
        assert_eq!(fault_of("id,title\n2,ok\n3,\"oops\n4,x\n").map(|f| f.0), Some(3));
        assert_eq!(fault_of("id,title\n2,\"ok\"junk\n").map(|f| f.0), Some(2));
        assert_eq!(fault_of("id,title\n1,a\n2,\"a\nb\"x\n").map(|f| f.0), Some(3));
    }

    proptest::proptest! {
        /// The scan that skips runs finds what stepping through every byte finds, however
        /// the input is cut into reads.
        #[test]
        fn skipping_runs_finds_the_same_faults_as_every_byte(
            input in proptest::collection::vec(proptest::sample::select(b"ab,\"\r\n\xEF\xBB\xBF".to_vec()), 0..64),
            cut in 1usize..9,
        ) {
            let mut each = Checked::new(io::empty());
            for b in &input {
                each.step(*b);
            }
            let mut scanned = Checked::new(io::empty());
            for chunk in input.chunks(cut) {
                scanned.scan(chunk);
            }
            proptest::prop_assert_eq!((each.state, each.line, each.fault), (scanned.state, scanned.line, scanned.fault));
        }
    }
}
