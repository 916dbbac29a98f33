use super::decode::tests::{sjis, OneByte};
use super::*;
use serde_json::json;

fn read_with(input: &[u8], opts: Options) -> Result<Vec<RowResult>, FileError> {
    LeadReader::without_batch(input, opts)?.collect()
}

fn read(input: &str) -> Result<Vec<RowResult>, FileError> {
    read_with(input.as_bytes(), Options::default())
}

/// (row, message) of each rejected row.
fn rejected(rows: &[RowResult]) -> Vec<(u64, String)> {
    rows.iter().filter_map(|r| r.as_ref().err().map(|e| (e.row, e.message.clone()))).collect()
}

fn accepted(rows: &[RowResult]) -> Vec<&LeadRow> {
    rows.iter().filter_map(|r| r.as_ref().ok()).collect()
}

const HEADER: &str = "name,kana,tel,remarks\r\n";

#[test]
fn every_spec_error_text_with_its_row() {
    let long = |n| "あ".repeat(n);
    let body = [
        "山田太郎,ヤマダタロウ,0312345678,メモ".to_string(), // 2 ok
        ",ヤマダ,0311111111,".to_string(),                   // 3
        "NULL,ヤマダ,0311111112,".to_string(),               // 4
        format!("{},ヤマダ,0311111113,", long(256)),         // 5
        "山田,,0311111114,".to_string(),                     // 6
        "山田,Null,0311111115,".to_string(),                 // 7
        format!("山田,{},0311111116,", long(256)),           // 8
        "山田,ヤマダ,,".to_string(),                         // 9
        "山田,ヤマダ,null,".to_string(),                     // 10
        "山田,ヤマダ,03-12x4,".to_string(),                  // 11
        format!("山田,ヤマダ,0{},", "1".repeat(30)),         // 12
        "山田,ヤマダ,312345678,".to_string(),                // 13
        "山田,ヤマダ,0312345678,".to_string(),               // 14 dup of row 2
        format!("山田,ヤマダ,0311111117,{}", long(1001)),    // 15
        "山田,ヤマダ".to_string(),                           // 16
        "山田,ヤマダ,0311111118,x,extra".to_string(),        // 17
        format!("山田,ヤマダ,0311111119,{}", long(1000)),    // 18 ok
        "山田,ヤマダ,0311111120,".to_string(),               // 19 ok
    ]
    .join("\r\n");
    let rows = read(&format!("{HEADER}{body}\r\n")).unwrap();
    assert_eq!(
        rejected(&rows),
        vec![
            (3, "name:値がありません".into()),
            (4, "name:'null'は利用できない文字です".into()),
            (5, "name:1文字から255文字までにしてください".into()),
            (6, "kana:値がありません".into()),
            (7, "kana:'null'は利用できない文字です".into()),
            (8, "kana:1文字から255文字までにしてください".into()),
            (9, "tel:値がありません".into()),
            (10, "tel:'null'は利用できない文字です".into()),
            (11, "tel:書式が正しくありません".into()),
            (12, "tel:1文字から30文字までにしてください".into()),
            (13, "tel:電話番号の先頭に0を入れてください".into()),
            (14, "指定したバッチ内に同一の電話番号が既に登録されています".into()),
            (15, "remarks:1文字から1000文字までにしてください".into()),
            (16, "カラムの数がヘッダーの数より少ないです".into()),
            (17, "カラムの数がヘッダーの数より多いです".into()),
        ]
    );
    let ok = accepted(&rows);
    assert_eq!(ok.iter().map(|r| r.row).collect::<Vec<_>>(), vec![2, 18, 19]);
    assert_eq!(ok[0].tel, "0312345678");
    assert_eq!(ok[0].name, "山田太郎");
    assert_eq!(ok[2].remarks, None);
    // The raw fields are kept for the error CSV.
    let e16 = rows[14].as_ref().unwrap_err();
    assert_eq!(e16.raw, vec!["山田", "ヤマダ"]);
}

#[test]
fn several_errors_in_one_row_are_joined() {
    let rows = read("name,kana,tel\nnull,,abc\n").unwrap();
    assert_eq!(
        rejected(&rows),
        vec![(2, "name:'null'は利用できない文字です / kana:値がありません / tel:書式が正しくありません".into())]
    );
}

#[test]
fn duplicates_against_batch_and_within_upload() {
    let input = format!("{HEADER}a,ア,0311110000,\nb,イ,0322220000,\nc,ウ,0322220000,\nd,エ,0333330000,\n");
    let batch: HashSet<String> = ["0311110000".to_string()].into();
    let rows: Vec<_> = LeadReader::new(input.as_bytes(), Options::default(), |t: &str| batch.contains(t))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rejected(&rows), vec![(2, MSG_DUPLICATE.into()), (4, MSG_DUPLICATE.into())]);
    // A rejected row does not reserve its tel.
    let rows = read(&format!("{HEADER},ア,0311110000,\nb,イ,0311110000,\n")).unwrap();
    assert_eq!(rejected(&rows), vec![(2, "name:値がありません".into())]);
    // Allowed duplicates.
    let opts = Options { allow_duplicate_tels: true, ..Options::default() };
    let rows = read_with(format!("{HEADER}a,ア,0311110001,\nb,イ,0311110001,\n").as_bytes(), opts).unwrap();
    assert_eq!(accepted(&rows).len(), 2);
}

#[test]
fn file_level_errors() {
    assert_eq!(read("").unwrap_err(), FileError::Empty);
    assert_eq!(read(HEADER).unwrap_err(), FileError::HeaderOnly);
    assert_eq!(read("name,kana,tel,remarks").unwrap_err(), FileError::HeaderOnly);
    assert_eq!(read("name,kana,tel,remarks\r\n\r\n\r\n").unwrap_err(), FileError::HeaderOnly);
    assert_eq!(FileError::HeaderOnly.to_string(), "ヘッダーのみでデータがありません");
    assert_eq!(read("name,tel\na,0\n").unwrap_err(), FileError::MissingColumn("kana".into()));
    assert_eq!(read("name,kana,tell\na,b,0\n").unwrap_err().to_string(), "ヘッダーに不明なカラムがあります: tell");
    assert_eq!(read("name,kana,tel,Name\na,b,0,c\n").unwrap_err(), FileError::DuplicateColumn("Name".into()));
    // Header case and spaces do not matter; remarks is optional.
    let rows = read(" Name ,KANA,Tel\na,b,0312345678\n").unwrap();
    assert_eq!(accepted(&rows).len(), 1);
}

#[test]
fn encodings_line_endings_and_quotes() {
    let text = "name,kana,tel,remarks\n\"山田, 太郎\",ヤマダ,0312345678,\"彼は\"\"はい\"\"と\r\n言った\"\r\n鈴木,スズキ,09011112222,一行目\\n二行目\n";
    let check = |rows: Vec<RowResult>| {
        let ok = accepted(&rows);
        assert_eq!(ok.len(), 2, "{rows:?}");
        assert_eq!(ok[0].name, "山田, 太郎");
        assert_eq!(ok[0].remarks.as_deref(), Some("彼は\"はい\"と\n言った"));
        assert_eq!(ok[0].row, 2);
        // The quoted record spans lines 2-3, so the next one is line 4.
        assert_eq!(ok[1].row, 4);
        assert_eq!(ok[1].remarks.as_deref(), Some("一行目\n二行目"));
        assert_eq!(store::leads::PhoneType::of(&ok[1].tel), store::leads::PhoneType::Mobile);
    };
    let sj = sjis(text);
    let bom = [&[0xEF, 0xBB, 0xBF][..], text.as_bytes()].concat();
    for (bytes, enc) in [(text.as_bytes().to_vec(), Encoding::Utf8), (bom, Encoding::Utf8Bom), (sj, Encoding::Cp932)] {
        let mut r = LeadReader::without_batch(&bytes[..], Options::default()).unwrap();
        check(r.by_ref().collect::<Result<_, _>>().unwrap());
        assert_eq!(r.encoding(), enc);
        assert_eq!(r.progress(), Progress { bytes_read: bytes.len() as u64, rows_read: 2 });
        // One byte at a time gives the same.
        let r = LeadReader::without_batch(OneByte(&bytes), Options::default()).unwrap();
        check(r.collect::<Result<_, _>>().unwrap());
    }
    // Blank lines are skipped but still counted in row numbers; a final
    // line without a newline is read.
    let rows = read("name,kana,tel\n\na,b,0100000001\r\n\r\nc,d,0200000002").unwrap();
    assert_eq!(accepted(&rows).iter().map(|r| r.row).collect::<Vec<_>>(), vec![3, 5]);
}

#[test]
fn undecodable_and_too_large() {
    let mut bytes = sjis("name,kana,tel\n山田,ヤマダ,0100000001\n");
    bytes.extend_from_slice(b"\xA0,b,0200000002\n");
    let items: Vec<_> = LeadReader::without_batch(&bytes[..], Options::default()).unwrap().collect();
    assert!(items[0].as_ref().unwrap().is_ok());
    assert_eq!(items.last().unwrap().as_ref().unwrap_err(), &FileError::Undecodable { line: 3 });
    assert_eq!(
        FileError::Undecodable { line: 3 }.to_string(),
        "3行目: 文字コードを判別できません（UTF-8またはShift_JISで保存してください）"
    );
    // Undecodable already in the header.
    assert_eq!(
        LeadReader::without_batch(&b"\xFF\xFF\n"[..], Options::default()).err(),
        Some(FileError::Undecodable { line: 1 })
    );
    let opts = Options { max_bytes: Some(30), ..Options::default() };
    let input = format!("{HEADER}{}", "a,b,01,\n".repeat(10));
    // Found while reading ahead in `new` here; mid-stream for a big file.
    let res = read_with(input.as_bytes(), opts);
    assert_eq!(res.unwrap_err().to_string(), "ファイルサイズは30バイトまでにしてください");
    assert_eq!(
        FileError::TooLarge { max_bytes: MAX_UPLOAD_BYTES }.to_string(),
        "ファイルサイズは5MBまでにしてください"
    );
}

fn generated(rows: u64) -> impl Read {
    // Streams `rows` generated data rows without materialising them.
    struct Gen {
        next: u64,
        rows: u64,
        buf: Vec<u8>,
        pos: usize,
    }
    impl Read for Gen {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            if self.pos == self.buf.len() {
                self.buf.clear();
                self.pos = 0;
                if self.next == 0 {
                    self.buf.extend_from_slice(HEADER.as_bytes());
                }
                while self.buf.len() < 8192 && self.next < self.rows {
                    self.next += 1;
                    let line =
                        format!("顧客{n},コキャク{n},090{n:08},\"備考 {n}, テスト\\n二行目\"\r\n", n = self.next);
                    self.buf.extend_from_slice(line.as_bytes());
                }
            }
            let n = out.len().min(self.buf.len() - self.pos);
            out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }
    Gen { next: 0, rows, buf: Vec::new(), pos: 0 }
}

/// This thread's on-CPU time (Linux schedstat), to time on a busy machine.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

#[test]
fn row_limit_is_all_or_nothing() {
    // Generate first so the timing covers only decode + parse + validate.
    let mut bytes = Vec::new();
    generated(50_000).read_to_end(&mut bytes).unwrap();
    for encoding in ["UTF-8", "CP932"] {
        let input = if encoding == "CP932" { sjis(std::str::from_utf8(&bytes).unwrap()) } else { bytes.clone() };
        let cpu_before = thread_cpu_ns();
        let started = std::time::Instant::now();
        let mut ok = 0u64;
        for item in LeadReader::without_batch(&input[..], Options::default()).unwrap() {
            assert!(item.unwrap().is_ok());
            ok += 1;
        }
        let elapsed = started.elapsed();
        let cpu_ms = thread_cpu_ns().zip(cpu_before).map(|(a, b)| (a - b) as f64 / 1e6);
        assert_eq!(ok, 50_000);
        eprintln!(
            "[timing] 50,000 rows ({encoding}, {} bytes) parsed+validated in {elapsed:?} wall, \
             {cpu_ms:?} ms on-CPU",
            input.len()
        );
    }

    let res: Result<Vec<_>, _> = LeadReader::without_batch(generated(50_001), Options::default()).unwrap().collect();
    let err = res.unwrap_err();
    assert_eq!(err, FileError::TooManyRows { max: 50_000 });
    assert_eq!(err.to_string(), "1回のアップロードは50000行までにしてください");
}

#[test]
fn streams_200k_rows_without_collecting() {
    let opts = Options { max_rows: 200_000, max_bytes: None, ..Options::default() };
    let mut r = LeadReader::without_batch(generated(200_000), opts).unwrap();
    let mut count = 0u64;
    for item in r.by_ref() {
        let lead = item.unwrap().unwrap();
        count += 1;
        assert_eq!(lead.row, count + 1);
    }
    assert_eq!(count, 200_000);
    assert_eq!(r.progress().rows_read, 200_000);
    assert!(r.progress().bytes_read > 10_000_000);
}

#[test]
fn error_csv_round_trips_in_cp932() {
    let text = "name,kana,tel,remarks\r\n,ヤマダ,0312345678,\"備考, 引用\"\r\n鈴木,スズキ,0312345679,\r\n佐藤\r\n";
    let bytes = sjis(text);
    let mut r = LeadReader::without_batch(&bytes[..], Options::default()).unwrap();
    let errors: Vec<RowError> = r.by_ref().filter_map(|i| i.unwrap().err()).collect();
    assert_eq!(r.encoding(), Encoding::Cp932);
    let out = error_csv(r.encoding(), r.header(), &errors);
    let (decoded, _, had_errors) = encoding_rs::SHIFT_JIS.decode(&out);
    assert!(!had_errors);
    assert_eq!(
        decoded,
        "行,name,kana,tel,remarks,エラー内容\r\n\
         2,,ヤマダ,0312345678,\"備考, 引用\",name:値がありません\r\n\
         4,佐藤,,,,カラムの数がヘッダーの数より少ないです\r\n"
    );
    // And it reads back with the same reader machinery (generic, ignoring columns).
    let utf8 = error_csv(Encoding::Utf8Bom, r.header(), &errors);
    assert!(utf8.starts_with(&[0xEF, 0xBB, 0xBF]));
}

#[test]
fn generic_import_with_every_field_kind() {
    let f = |column: &str, key: &str, kind: FieldKind| FieldMapping {
        column: column.into(),
        key: key.into(),
        label: column.into(),
        kind,
        required: false,
    };
    let opts = Options {
        format: Format::Generic(GenericMapping {
            tel_column: "電話番号".into(),
            name_column: Some("氏名".into()),
            kana_column: None,
            remarks_column: Some("メモ".into()),
            fields: vec![
                f("会社", "company", FieldKind::Text),
                f("金額", "amount", FieldKind::Number),
                f("契約日", "signed", FieldKind::Date),
                f("携帯", "mobile", FieldKind::Phone),
                f("メール", "email", FieldKind::Email),
                f("詳細", "detail", FieldKind::LongText),
                f("プラン", "plan", FieldKind::Select { options: vec!["A".into(), "B".into()] }),
                f("性別", "sex", FieldKind::Radio { options: vec!["男".into(), "女".into()] }),
                f("興味", "interest", FieldKind::Checkbox { options: vec!["車".into(), "家".into()] }),
                f("郵便番号", "zip", FieldKind::PostalCode),
            ],
        }),
        tags: vec!["2024春".into()],
        ..Options::default()
    };
    let text = "氏名,電話番号,会社,金額,契約日,携帯,メール,詳細,プラン,性別,興味,郵便番号,メモ,未使用\n\
        山田,0311112222,ACME,\"1,200\",2024/4/1,090-1111-2222,a@b.jp,一\\n二,A,男,車|家,100-0001,m,x\n\
        鈴木,0311112223,,abc,2024-02-30,12,bad,,C,他,船,1,,\n";
    let rows = read_with(&sjis(text), opts).unwrap();
    let ok = accepted(&rows);
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].name, "山田");
    assert_eq!(ok[0].kana, "");
    assert_eq!(ok[0].tel, "0311112222");
    assert_eq!(ok[0].remarks.as_deref(), Some("m"));
    assert_eq!(ok[0].tags, vec!["2024春".to_string()]);
    assert_eq!(
        Value::Object(ok[0].custom.clone()),
        json!({
            "company": "ACME", "amount": 1200, "signed": "2024-04-01", "mobile": "09011112222",
            "email": "a@b.jp", "detail": "一\n二", "plan": "A", "sex": "男",
            "interest": ["車", "家"], "zip": "100-0001"
        })
    );
    assert_eq!(
        rejected(&rows),
        vec![(
            3,
            "金額:数値で入力してください / 契約日:日付の書式が正しくありません（例: 2024-01-31） / \
             携帯:電話番号の先頭に0を入れてください / メール:メールアドレスの書式が正しくありません / \
             プラン:選択肢にない値です（C） / 性別:選択肢にない値です（他） / 興味:選択肢にない値です（船） / \
             郵便番号:郵便番号の書式が正しくありません（例: 123-4567）"
                .into()
        )]
    );
}

#[test]
fn generic_mapping_errors() {
    let g = |tel: &str| Options {
        format: Format::Generic(GenericMapping { tel_column: tel.into(), ..GenericMapping::default() }),
        ..Options::default()
    };
    assert_eq!(read_with(b"a,b\n1,2\n", g("tel")).unwrap_err(), FileError::MissingColumn("tel".into()));
    assert_eq!(
        read_with(b"a,b\n1,2\n", g("")).unwrap_err().to_string(),
        "電話番号（tel）に割り当てるカラムを1つ指定してください"
    );
    let mut both = g("a");
    if let Format::Generic(m) = &mut both.format {
        m.name_column = Some("a".into());
    }
    assert_eq!(
        read_with(b"a,b\n1,2\n", both).unwrap_err().to_string(),
        "カラム「a」が複数の項目に割り当てられています"
    );
    // Unmapped columns are ignored; tel rules apply to the mapped column.
    let rows = read_with(b"a,b\n0120000000,x\n120000000,y\n", g("a")).unwrap();
    assert_eq!(rejected(&rows), vec![(3, "tel:電話番号の先頭に0を入れてください".into())]);
}

/// Tiny deterministic PRNG (xorshift64*) for the fuzz-ish test.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn random_input_never_panics() {
    let alphabet: Vec<u8> = b",\"\r\n\\n0-9aNUL"
        .iter()
        .copied()
        .chain(sjis("山ヤ０－"))
        .chain([0xEF, 0xBB, 0xBF, 0x80, 0xFF, 0xA0, 0xE3])
        .collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for case in 0..3000 {
        let len = (rng.next() % 300) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                let r = rng.next();
                if case % 2 == 0 {
                    alphabet[(r % alphabet.len() as u64) as usize]
                } else {
                    r as u8
                }
            })
            .collect();
        let mut input = b"name,kana,tel,remarks\n".to_vec();
        if case % 3 != 0 {
            input.extend_from_slice(&bytes);
        } else {
            input = bytes;
        }
        let opts = Options { max_rows: 5, ..Options::default() };
        if let Ok(r) = LeadReader::without_batch(OneByte(&input), opts) {
            let errors: Vec<RowError> = r.filter_map(|i| i.ok()?.err()).collect();
            for enc in [Encoding::Utf8, Encoding::Utf8Bom, Encoding::Cp932] {
                let _ = error_csv(enc, &["name".into()], &errors);
            }
        }
    }
}

#[test]
fn bom_only_is_empty_and_limit_mid_stream() {
    assert_eq!(read("\u{feff}").unwrap_err(), FileError::Empty);
    assert_eq!(read("\u{feff}\r\n\r\n").unwrap_err(), FileError::Empty);
    // The byte limit is checked while streaming: rows before it are yielded,
    // then the fatal error ends the iteration.
    let opts = Options { max_bytes: Some(200_000), max_rows: u64::MAX, ..Options::default() };
    let items: Vec<_> = LeadReader::without_batch(generated(10_000), opts).unwrap().collect();
    assert!(items.len() > 100);
    assert_eq!(items.last().unwrap().as_ref().unwrap_err(), &FileError::TooLarge { max_bytes: 200_000 });
    assert!(items[..items.len() - 1].iter().all(|i| matches!(i, Ok(Ok(_)))));
}

#[test]
fn lf_and_crlf_give_the_same_rows_and_numbers() {
    let lf = "name,kana,tel,remarks\na,ア,0100000001,\"x\ny\"\n\nb,イ,0200000002,z\n";
    let crlf = lf.replace('\n', "\r\n");
    let a = read(lf).unwrap();
    let b = read(&crlf).unwrap();
    let rows = |v: &[RowResult]| accepted(v).iter().map(|r| (r.row, r.remarks.clone())).collect::<Vec<_>>();
    assert_eq!(rows(&a), vec![(2, Some("x\ny".into())), (5, Some("z".into()))]);
    assert_eq!(rows(&a), rows(&b));
}

#[test]
fn no_header_row_and_other_delimiters() {
    // 最初の行を含む: the first record is data; columns are 列1, 列2, ...; tab separated, CP932.
    let opts = Options {
        format: Format::Generic(GenericMapping {
            tel_column: "列2".into(),
            name_column: Some("列1".into()),
            remarks_column: Some("列3".into()),
            ..GenericMapping::default()
        }),
        delimiter: b'\t',
        has_header: false,
        ..Options::default()
    };
    let text = "山田\t0311112222\t東京\r\n\t0311112223\t\r\n鈴木\t0311112224\r\n";
    let bytes = sjis(text);
    let mut reader = LeadReader::without_batch(&bytes[..], opts).unwrap();
    assert_eq!(reader.header(), ["列1", "列2", "列3"]);
    let rows: Vec<RowResult> = reader.by_ref().collect::<Result<_, _>>().unwrap();
    assert_eq!(reader.encoding(), Encoding::Cp932);
    let ok = accepted(&rows);
    assert_eq!((ok.len(), ok[0].row, ok[0].name.as_str(), ok[0].tel.as_str()), (1, 1, "山田", "0311112222"));
    assert_eq!(
        rejected(&rows),
        vec![(2, "name:値がありません".into()), (3, "カラムの数がヘッダーの数より少ないです".into())]
    );
    // The error CSV names the columns as the mapping does.
    let bad: Vec<RowError> = rows.into_iter().filter_map(Result::err).collect();
    let csv = String::from_utf8(error_csv(Encoding::Utf8, &["列1".into(), "列2".into(), "列3".into()], &bad)).unwrap();
    assert!(csv.starts_with("行,列1,列2,列3,エラー内容\r\n2,,0311112223,,name:値がありません\r\n"), "{csv}");
    // A semicolon file with a header; the standard format needs a header row.
    let semi = Options { delimiter: b';', ..Options::default() };
    let rows = read_with(b"name;kana;tel\nA;B;0312345678\n", semi).unwrap();
    assert_eq!(accepted(&rows).len(), 1);
    let headless = Options { has_header: false, ..Options::default() };
    assert_eq!(read_with(b"A,B,0312345678\n", headless).unwrap_err(), FileError::UnknownColumn("列1".into()));
}

#[test]
fn preview_shows_the_first_rows_as_read() {
    let text = "氏名,電話\r\n山田,03-1111-2222\r\n\r\n\"鈴木\n二郎\",0311112223\r\n佐藤,0311112224,余分\r\n";
    let p = preview(&sjis(text)[..], b',', true, 2).unwrap();
    assert_eq!(p.encoding, Encoding::Cp932);
    assert_eq!(p.columns, ["氏名", "電話"]);
    assert_eq!(
        p.rows,
        vec![vec!["山田".to_string(), "03-1111-2222".into()], vec!["鈴木\n二郎".into(), "0311112223".into()]]
    );
    // Without a header: as many 列N as the widest row.
    let p = preview(text.as_bytes(), b',', false, 10).unwrap();
    assert_eq!(p.columns, ["列1", "列2", "列3"]);
    assert_eq!((p.rows.len(), p.encoding), (4, Encoding::Utf8));
    assert_eq!(preview(&b""[..], b',', true, 10).unwrap_err(), FileError::Empty);
    assert!(matches!(preview(&b"a,b\n\xff\xff\xff\n"[..], b',', true, 10), Err(FileError::Undecodable { .. })));
}
