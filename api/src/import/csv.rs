//! STUB (replaced by the real lead-file reader).
use std::collections::HashMap;
use std::io::Read;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding { Utf8, Utf8Bom, Cp932 }
impl Encoding { pub fn as_str(self) -> &'static str { match self { Encoding::Utf8 => "utf-8", Encoding::Utf8Bom => "utf-8-bom", Encoding::Cp932 => "shift_jis" } } }
#[derive(Debug, Clone)]
pub struct LeadRow { pub row: u64, pub raw: Vec<String>, pub name: String, pub kana: String, pub tel: String, pub remarks: Option<String>, pub custom: serde_json::Map<String, serde_json::Value> }
#[derive(Debug, Clone)]
pub struct RowError { pub row: u64, pub raw: Vec<String>, pub message: String }
#[derive(Debug, Clone, thiserror::Error)]
pub enum FileError { #[error("ヘッダーのみでデータがありません")] NoData }
impl FileError { pub fn code(&self) -> &'static str { "no_data" } pub fn encoding(&self) -> Option<Encoding> { None } }
pub enum ReadError { Row(RowError), File(FileError) }
#[derive(Debug, Clone)]
pub struct CustomField { pub key: String, pub kind: String, pub options: Vec<String> }
#[derive(Debug, Clone)]
pub struct Mapping;
impl Mapping { pub fn new(_m: HashMap<String, String>, _f: Vec<CustomField>) -> Result<Mapping, String> { Ok(Mapping) } }
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadProgress { pub bytes_read: u64, pub rows_read: u64 }
pub struct LeadReader<R> { _r: R }
impl<R: Read> LeadReader<R> {
    pub fn new(r: R, _m: Option<Mapping>) -> Result<Self, FileError> { Ok(LeadReader { _r: r }) }
    pub fn encoding(&self) -> Encoding { Encoding::Utf8 }
    pub fn header(&self) -> &[String] { &[] }
    pub fn progress(&self) -> ReadProgress { ReadProgress::default() }
}
impl<R: Read> Iterator for LeadReader<R> { type Item = Result<LeadRow, ReadError>; fn next(&mut self) -> Option<Self::Item> { None } }
pub fn error_csv(_e: Encoding, _h: &[String], _r: &[RowError]) -> Vec<u8> { vec![] }
