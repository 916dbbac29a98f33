//! Customer-list (顧客リスト) CSV reader and validator (SPEC 4).
//!
//! Pure: no I/O beyond the `Read` it is handed, no clock, no database. The
//! caller supplies a closure answering "is this tel already in the batch?".
//!
//! ```text
//! Read (UTF-8 | UTF-8+BOM | CP932)  ->  DecodeReader (UTF-8)  ->  csv  ->  validate  ->  Item
//! ```
//!
//! [`LeadReader`] is an iterator of `Result<RowResult, FileError>`: one item
//! per data row, each either an accepted [`LeadRow`] or a [`RowError`]. A
//! `FileError` ends the iteration and means the whole upload is rejected
//! ("nothing half-written"): since rows are streamed, a caller must stage the
//! accepted rows (e.g. one SQL transaction) and commit only after the iterator
//! has returned `None` without a `FileError`. Errors that can be seen before
//! the first row (empty file, bad header, header only) come from
//! [`LeadReader::new`].
//!
//! Memory is bounded by the csv buffer, one record, the decode window
//! ([`decode::SNIFF_BYTES`]) and the set of tels accepted so far (at most
//! `max_rows`).

pub mod decode;
pub mod validate;

use std::collections::HashSet;
use std::io::Read;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use decode::{DecodeFailure, DecodeReader};
pub use validate::FieldKind;

/// Rows per upload (SPEC 4).
pub const MAX_ROWS_PER_UPLOAD: u64 = 50_000;

/// Bytes per upload (SPEC 11: a CSV of 5 MB or more is bad input).
pub const MAX_UPLOAD_BYTES: u64 = 5 * 1024 * 1024;

/// Text for a tel already in the batch or earlier in the same upload.
pub const MSG_DUPLICATE: &str = "指定したバッチ内に同一の電話番号が既に登録されています";
pub const MSG_FEWER_COLUMNS: &str = "カラムの数がヘッダーの数より少ないです";
pub const MSG_MORE_COLUMNS: &str = "カラムの数がヘッダーの数より多いです";

/// Encoding of an upload; the error CSV is written back in the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encoding {
    Utf8,
    Utf8Bom,
    Cp932,
}

/// An accepted row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeadRow {
    /// Line of the file where the record starts (header = 1).
    pub row: u64,
    /// Trimmed. Empty in a generic import without a name column.
    pub name: String,
    /// Trimmed. Empty in a generic import without a kana column.
    pub kana: String,
    /// Normalised dialled number: ASCII digits, leading 0.
    pub tel: String,
    /// Line breaks as `\n`; `None` when empty.
    pub remarks: Option<String>,
    /// Custom field key -> value (generic import only).
    pub custom: Map<String, Value>,
    /// Tags from [`Options::tags`], the same on every row.
    pub tags: Vec<String>,
}

/// A rejected row: goes to the error CSV; the other rows are still imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    /// Line of the file where the record starts (header = 1).
    pub row: u64,
    /// The record's fields as read (decoded, untrimmed).
    pub raw: Vec<String>,
    /// Every problem in the row, in column order, joined by ` / `.
    pub message: String,
}

pub type RowResult = Result<LeadRow, RowError>;

/// The whole upload is rejected; nothing may be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("ファイルにデータがありません")]
    Empty,
    #[error("ヘッダーのみでデータがありません")]
    HeaderOnly,
    #[error("ヘッダーに必要なカラムがありません: {0}")]
    MissingColumn(String),
    #[error("ヘッダーに不明なカラムがあります: {0}")]
    UnknownColumn(String),
    #[error("ヘッダーのカラムが重複しています: {0}")]
    DuplicateColumn(String),
    #[error("{0}")]
    BadMapping(String),
    #[error("1回のアップロードは{max}行までにしてください")]
    TooManyRows { max: u64 },
    #[error("ファイルサイズは{}までにしてください", size_text(*max_bytes))]
    TooLarge { max_bytes: u64 },
    #[error("{line}行目: 文字コードを判別できません（UTF-8またはShift_JISで保存してください）")]
    Undecodable { line: u64 },
    #[error("ファイルを読み込めません: {0}")]
    Io(String),
}

/// `5MB` for whole mebibytes, else `N バイト`.
fn size_text(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{}MB", bytes / MIB)
    } else {
        format!("{bytes}バイト")
    }
}

/// One custom-field column of a generic import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldMapping {
    /// CSV header name (matched after trimming).
    pub column: String,
    /// Custom field key stored in [`LeadRow::custom`].
    pub key: String,
    /// Field name used in error texts (`<label>:…`).
    pub label: String,
    #[serde(flatten)]
    pub kind: FieldKind,
    #[serde(default)]
    pub required: bool,
}

/// Generic import: CSV header names mapped onto lead fields. Columns not
/// named here are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct GenericMapping {
    /// The column holding the dialled number (tel rules; errors say `tel:`).
    pub tel_column: String,
    /// Optional columns for name / kana (required-text rules when mapped)
    /// and remarks.
    pub name_column: Option<String>,
    pub kana_column: Option<String>,
    pub remarks_column: Option<String>,
    pub fields: Vec<FieldMapping>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub enum Format {
    /// Header `name,kana,tel,remarks` (any order, case-insensitive; remarks
    /// may be omitted; no other columns).
    #[default]
    Standard,
    Generic(GenericMapping),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Options {
    pub format: Format,
    /// Data rows per upload; more is [`FileError::TooManyRows`].
    pub max_rows: u64,
    /// Raw bytes per upload (default [`MAX_UPLOAD_BYTES`]); `None` = no
    /// limit here.
    pub max_bytes: Option<u64>,
    /// Accept a tel that is already in the batch / earlier in the file
    /// ("duplicates rejected unless allowed").
    pub allow_duplicate_tels: bool,
    /// Added to every imported lead.
    pub tags: Vec<String>,
    /// The field separator (区切り文字): `,` by default, or `\t`, `;`.
    pub delimiter: u8,
    /// The first record is a header (最初の行). Without one, the columns are named `列1`, `列2`,
    /// ... (as many as the first record has) and the first record is data; a generic mapping
    /// names them so.
    pub has_header: bool,
    /// The number column is normalised ([`validate::tel`]: hyphens, spaces and full-width digits
    /// taken out) instead of taken as written ([`validate::lead_tel`]): for the phone book, where a
    /// number only names a caller; a lead's number is dialled and is never changed silently.
    pub normalise_tel: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            format: Format::Standard,
            max_rows: MAX_ROWS_PER_UPLOAD,
            max_bytes: Some(MAX_UPLOAD_BYTES),
            allow_duplicate_tels: false,
            tags: Vec::new(),
            delimiter: b',',
            has_header: true,
            normalise_tel: false,
        }
    }
}

/// The name of the `n`th column (from 1) of a file without a header row.
pub fn column_name(n: usize) -> String {
    format!("列{n}")
}

/// The first rows of an upload as the reader sees them, for the column mapping (no validation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preview {
    pub encoding: Encoding,
    /// The header as read, or `列1`, `列2`, ... without a header row (as many as the widest row
    /// previewed).
    pub columns: Vec<String>,
    /// Up to `max_rows` data records, fields as read (the CR of a CRLF dropped).
    pub rows: Vec<Vec<String>>,
}

/// Reads the header (if any) and up to `max_rows` records. The input may be the start of a file cut
/// at a line end. Errors: an empty or undecodable input.
pub fn preview<R: Read>(input: R, delimiter: u8, has_header: bool, max_rows: usize) -> Result<Preview, FileError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_reader(DecodeReader::new(input, Some(MAX_UPLOAD_BYTES)));
    let mut record = csv::StringRecord::new();
    let mut header = None;
    let mut rows = Vec::new();
    while rows.len() < max_rows {
        let more = csv.read_record(&mut record).map_err(|e| match csv.get_ref().failure() {
            Some(DecodeFailure::Undecodable { line }) => FileError::Undecodable { line: *line },
            Some(DecodeFailure::TooLarge { max_bytes }) => FileError::TooLarge { max_bytes: *max_bytes },
            Some(DecodeFailure::Io(s)) => FileError::Io(s.clone()),
            None => FileError::Io(e.to_string()),
        })?;
        if !more {
            break;
        }
        if record.len() == 1 && record[0].trim().is_empty() {
            continue;
        }
        let last = record.len() - 1;
        let fields: Vec<String> = record
            .iter()
            .enumerate()
            .map(|(i, f)| if i == last { f.strip_suffix('\r').unwrap_or(f) } else { f }.to_string())
            .collect();
        if has_header && header.is_none() {
            header = Some(fields);
        } else {
            rows.push(fields);
        }
    }
    let columns = match header {
        Some(h) => h,
        None if rows.is_empty() => return Err(FileError::Empty),
        None => (1..=rows.iter().map(Vec::len).max().unwrap_or(0)).map(column_name).collect(),
    };
    Ok(Preview { encoding: csv.get_ref().encoding(), columns, rows })
}

/// Reading progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Progress {
    /// Raw bytes consumed from the upload.
    pub bytes_read: u64,
    /// Data rows read (accepted + rejected).
    pub rows_read: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Name,
    Kana,
    Tel,
    Remarks,
    Custom(usize),
    Ignored,
}

/// Streaming reader. `E` answers whether a normalised tel already exists in
/// the target batch.
pub struct LeadReader<R: Read, E = fn(&str) -> bool> {
    csv: csv::Reader<DecodeReader<R>>,
    roles: Vec<Role>,
    header: Vec<String>,
    opts: Options,
    exists: E,
    /// Tels accepted so far in this upload (see [`tel_key`]).
    seen: HashSet<(u8, u128)>,
    record: csv::StringRecord,
    /// Start line of `record`.
    row: u64,
    /// The first data record, read by `new` to detect a header-only file.
    peeked: bool,
    rows_read: u64,
    done: bool,
}

/// No tel exists in the batch yet.
pub fn no_existing_tels(_: &str) -> bool {
    false
}

impl<R: Read> LeadReader<R> {
    /// Reader for an upload into a batch known to be empty.
    pub fn without_batch(input: R, opts: Options) -> Result<Self, FileError> {
        LeadReader::new(input, opts, no_existing_tels as fn(&str) -> bool)
    }
}

impl<R: Read, E: FnMut(&str) -> bool> LeadReader<R, E> {
    /// Detects the encoding, reads and checks the header, and reads ahead
    /// to the first data row.
    pub fn new(input: R, opts: Options, exists: E) -> Result<Self, FileError> {
        if opts.tags.iter().any(|t| t.trim().is_empty()) {
            return Err(FileError::BadMapping("タグ:値がありません".into()));
        }
        let decoder = DecodeReader::new(input, opts.max_bytes);
        let csv = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            // Records end at LF only; the CR of a CRLF stays on the last
            // field and `fields()` drops it. This keeps csv's line counter
            // exact for CRLF files (see `read_record`). A lone CR (classic
            // Mac) is not a line break.
            .terminator(csv::Terminator::Any(b'\n'))
            .delimiter(opts.delimiter)
            .from_reader(decoder);
        let mut me = LeadReader {
            csv,
            roles: Vec::new(),
            header: Vec::new(),
            opts,
            exists,
            seen: HashSet::new(),
            record: csv::StringRecord::new(),
            row: 0,
            peeked: false,
            rows_read: 0,
            done: false,
        };
        if !me.read_record()? {
            return Err(FileError::Empty);
        }
        if me.opts.has_header {
            me.header = me.fields().map(str::to_string).collect();
            me.roles = roles(&me.header, &me.opts.format)?;
            if !me.read_record()? {
                return Err(FileError::HeaderOnly);
            }
        } else {
            me.header = (1..=me.record.len()).map(column_name).collect();
            me.roles = roles(&me.header, &me.opts.format)?;
        }
        me.peeked = true;
        Ok(me)
    }

    /// The header as read (for [`error_csv`]).
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// Detected encoding. Final once iteration has ended (an all-ASCII
    /// file reports `Utf8`).
    pub fn encoding(&self) -> Encoding {
        self.csv.get_ref().encoding()
    }

    pub fn progress(&self) -> Progress {
        Progress { bytes_read: self.csv.get_ref().bytes_read(), rows_read: self.rows_read }
    }

    /// Read the next non-blank record into `self.record` and its start line
    /// into `self.row`. Ok(false) at the end of the input.
    fn read_record(&mut self) -> Result<bool, FileError> {
        loop {
            if !self.csv.read_record(&mut self.record).map_err(|e| self.map_err(e))? {
                return Ok(false);
            }
            // csv's line counter, read after the record, includes the
            // record's terminating LF (if any: the last record may end at
            // EOF). Subtract it and the LFs inside quoted fields.
            let pos = self.csv.position();
            let dec = self.csv.get_ref();
            let ended_at_eof =
                pos.byte() == dec.decoded_bytes() && dec.finished().is_some_and(|last| last != Some(b'\n'));
            let end_line = pos.line().saturating_sub(u64::from(!ended_at_eof));
            let inner: usize = self.record.iter().map(|f| f.bytes().filter(|&b| b == b'\n').count()).sum();
            self.row = end_line.saturating_sub(inner as u64).max(1);
            // A blank (or whitespace-only) line is not a record.
            if !(self.record.len() == 1 && self.record[0].trim().is_empty()) {
                return Ok(true);
            }
        }
    }

    fn map_err(&self, e: csv::Error) -> FileError {
        match self.csv.get_ref().failure() {
            Some(DecodeFailure::Undecodable { line }) => FileError::Undecodable { line: *line },
            Some(DecodeFailure::TooLarge { max_bytes }) => FileError::TooLarge { max_bytes: *max_bytes },
            Some(DecodeFailure::Io(s)) => FileError::Io(s.clone()),
            // csv itself does not fail on valid UTF-8 with flexible rows.
            None => FileError::Io(e.to_string()),
        }
    }

    /// The current record's fields, without the CR of a CRLF terminator.
    fn fields(&self) -> impl Iterator<Item = &str> {
        let last = self.record.len().saturating_sub(1);
        self.record.iter().enumerate().map(move |(i, f)| if i == last { f.strip_suffix('\r').unwrap_or(f) } else { f })
    }

    fn validate(&mut self) -> RowResult {
        let row = self.row;
        let reject =
            |me: &Self, message: String| RowError { row, raw: me.fields().map(str::to_string).collect(), message };
        let n = self.roles.len();
        if self.record.len() < n {
            return Err(reject(self, MSG_FEWER_COLUMNS.to_string()));
        }
        if self.fields().skip(n).any(|f| !f.trim().is_empty()) {
            return Err(reject(self, MSG_MORE_COLUMNS.to_string()));
        }
        let mut errors: Vec<String> = Vec::new();
        let mut lead = LeadRow {
            row,
            name: String::new(),
            kana: String::new(),
            tel: String::new(),
            remarks: None,
            custom: Map::new(),
            tags: self.opts.tags.clone(),
        };
        let mut tel_ok = false;
        for (value, role) in self.fields().zip(&self.roles) {
            let res = match *role {
                Role::Name => validate::required_text("name", value, validate::NAME_MAX_CHARS).map(|v| lead.name = v),
                Role::Kana => validate::required_text("kana", value, validate::NAME_MAX_CHARS).map(|v| lead.kana = v),
                Role::Tel => {
                    if self.opts.normalise_tel { validate::tel("tel", value) } else { validate::lead_tel("tel", value) }
                        .map(|v| {
                            lead.tel = v;
                            tel_ok = true;
                        })
                }
                Role::Remarks => {
                    validate::multiline_text("remarks", value, validate::REMARKS_MAX_CHARS).map(|v| lead.remarks = v)
                }
                Role::Custom(i) => {
                    let Format::Generic(g) = &self.opts.format else {
                        unreachable!("custom roles exist only for generic mappings")
                    };
                    let f = &g.fields[i];
                    validate::custom(&f.label, &f.kind, f.required, value).map(|v| {
                        if let Some(v) = v {
                            lead.custom.insert(f.key.clone(), v);
                        }
                    })
                }
                Role::Ignored => Ok(()),
            };
            if let Err(e) = res {
                errors.push(e);
            }
        }
        if tel_ok
            && !self.opts.allow_duplicate_tels
            && (self.seen.contains(&tel_key(&lead.tel)) || (self.exists)(&lead.tel))
        {
            errors.push(MSG_DUPLICATE.to_string());
        }
        if !errors.is_empty() {
            return Err(reject(self, errors.join(" / ")));
        }
        if !self.opts.allow_duplicate_tels {
            self.seen.insert(tel_key(&lead.tel));
        }
        Ok(lead)
    }
}

impl<R: Read, E: FnMut(&str) -> bool> Iterator for LeadReader<R, E> {
    type Item = Result<RowResult, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if !self.peeked {
            match self.read_record() {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        self.peeked = false;
        self.rows_read += 1;
        if self.rows_read > self.opts.max_rows {
            self.done = true;
            return Some(Err(FileError::TooManyRows { max: self.opts.max_rows }));
        }
        Some(Ok(self.validate()))
    }
}

/// Allocation-free set key for a validated tel (at most 30 ASCII digits, so
/// the value fits in a u128; the length keeps leading zeros distinct).
fn tel_key(tel: &str) -> (u8, u128) {
    let value = tel.bytes().fold(0u128, |acc, b| acc.wrapping_mul(10).wrapping_add(u128::from(b.wrapping_sub(b'0'))));
    (tel.len().min(255) as u8, value)
}

fn roles(header: &[String], format: &Format) -> Result<Vec<Role>, FileError> {
    let names: Vec<&str> = header.iter().map(|h| h.trim()).collect();
    for (i, h) in names.iter().enumerate() {
        if names[..i].iter().any(|p| p.eq_ignore_ascii_case(h)) {
            return Err(FileError::DuplicateColumn(h.to_string()));
        }
    }
    match format {
        Format::Standard => {
            let roles = names
                .iter()
                .map(|h| match h.to_ascii_lowercase().as_str() {
                    "name" => Ok(Role::Name),
                    "kana" => Ok(Role::Kana),
                    "tel" => Ok(Role::Tel),
                    "remarks" => Ok(Role::Remarks),
                    _ => Err(FileError::UnknownColumn(h.to_string())),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let missing: Vec<&str> = [(Role::Name, "name"), (Role::Kana, "kana"), (Role::Tel, "tel")]
                .iter()
                .filter(|(r, _)| !roles.contains(r))
                .map(|(_, n)| *n)
                .collect();
            if !missing.is_empty() {
                return Err(FileError::MissingColumn(missing.join(",")));
            }
            Ok(roles)
        }
        Format::Generic(g) => {
            let mut roles = vec![Role::Ignored; names.len()];
            let mut assign = |column: &str, role: Role| -> Result<(), FileError> {
                let col = column.trim();
                let i =
                    names.iter().position(|h| *h == col).ok_or_else(|| FileError::MissingColumn(col.to_string()))?;
                if roles[i] != Role::Ignored {
                    return Err(FileError::BadMapping(format!("カラム「{col}」が複数の項目に割り当てられています")));
                }
                roles[i] = role;
                Ok(())
            };
            if g.tel_column.trim().is_empty() {
                return Err(FileError::BadMapping("電話番号（tel）に割り当てるカラムを1つ指定してください".into()));
            }
            assign(&g.tel_column, Role::Tel)?;
            for (col, role) in
                [(&g.name_column, Role::Name), (&g.kana_column, Role::Kana), (&g.remarks_column, Role::Remarks)]
            {
                if let Some(c) = col {
                    assign(c, role)?;
                }
            }
            for (i, f) in g.fields.iter().enumerate() {
                if g.fields[..i].iter().any(|p| p.key == f.key) {
                    return Err(FileError::BadMapping(format!(
                        "カスタム項目「{}」が複数のカラムに割り当てられています",
                        f.label
                    )));
                }
                assign(&f.column, Role::Custom(i))?;
            }
            Ok(roles)
        }
    }
}

/// The error CSV for the rejected rows, in the upload's encoding, CRLF.
/// Columns: `行`, the original header columns, `エラー内容`. Characters
/// that CP932 cannot represent become `&#NNNN;` (only possible if the upload
/// was not CP932 to begin with).
pub fn error_csv(encoding: Encoding, header: &[String], errors: &[RowError]) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new().flexible(true).terminator(csv::Terminator::CRLF).from_writer(Vec::new());
    let mut write = |rec: Vec<&str>| {
        // Writing to a Vec cannot fail.
        let _ = w.write_record(rec);
    };
    let mut head = vec!["行"];
    head.extend(header.iter().map(String::as_str));
    head.push("エラー内容");
    write(head);
    for e in errors {
        let row = e.row.to_string();
        let mut rec = vec![row.as_str()];
        rec.extend(e.raw.iter().map(String::as_str));
        // Keep the message in the last column even for short/long rows.
        rec.resize(header.len().max(e.raw.len()) + 1, "");
        rec.push(&e.message);
        write(rec);
    }
    let utf8 = w.into_inner().unwrap_or_else(|e| e.into_inner().get_ref().clone());
    match encoding {
        Encoding::Utf8 => utf8,
        Encoding::Utf8Bom => [&[0xEF, 0xBB, 0xBF][..], &utf8].concat(),
        Encoding::Cp932 => {
            let text = String::from_utf8_lossy(&utf8);
            encoding_rs::SHIFT_JIS.encode(&text).0.into_owned()
        }
    }
}

#[cfg(test)]
mod tests;
