//! The SOQL subset: parser (with Salesforce's `ERROR at Row:1:Column:N` messages
//! and error codes), a planner that uses the id, value and `SystemModstamp`
//! indexes (so `WHERE SystemModstamp > t ORDER BY SystemModstamp, Id LIMIT n`
//! touches O(n log N) records), evaluation and record rendering.
//!
//! Supported: `SELECT f, Rel.f, COUNT(), COUNT(Id), FIELDS(ALL|STANDARD|CUSTOM)
//! FROM Obj [WHERE ...] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ...]
//! [LIMIT n] [OFFSET n]`; conditions `= != <> < <= > >= LIKE IN NOT IN INCLUDES
//! EXCLUDES`, `AND`/`OR` (not mixed without parentheses, like SOQL), `NOT`;
//! literals: strings, numbers, `true`/`false`, `null`, dates, datetimes and
//! `TODAY`, `YESTERDAY`, `TOMORROW`, `LAST_N_DAYS:n`, `NEXT_N_DAYS:n`, `THIS_MONTH`.

use std::borrow::Cow;
use std::cmp::Ordering;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde_json::Value;

use super::error::SfError;
use super::model::{J, Record, SfId, Val, parse_datetime};
use super::schema::{FieldType, Source};
use super::store::Store;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
    Sym(&'static str),
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: usize,
    text: String,
}

/// A field in a select list, filter or ordering: `Email` or `Account.Name`.
#[derive(Debug, Clone)]
pub struct FieldRef {
    /// The canonical path, e.g. `Account.Name`.
    pub path: String,
    /// `(reference field on the base object, relationship name)` for `Rel.Field`.
    rel: Option<(u16, String)>,
    /// The field on the base object, or its API name on the related one.
    field: u16,
    field_name: String,
    ftype: FieldType,
}

impl FieldRef {
    fn get<'a>(&self, store: &'a Store, obj: usize, rec: &'a Record) -> Option<Cow<'a, Val>> {
        match &self.rel {
            None => store.value(obj, rec, self.field),
            Some((ref_field, _)) => {
                let id = SfId::parse(rec.get(*ref_field)?.as_str()?)?;
                let target = store.object_of_id(&id)?;
                let f = store.schema[target].field(&self.field_name)?;
                let r = store.tables[target].records.get(&id)?;
                store.value(target, r, f)
            }
        }
    }

    fn is_id(&self) -> bool {
        self.ftype.is_id()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn holds(self, o: Ordering) -> bool {
        match self {
            Op::Eq => o == Ordering::Equal,
            Op::Ne => o != Ordering::Equal,
            Op::Lt => o == Ordering::Less,
            Op::Le => o != Ordering::Greater,
            Op::Gt => o == Ordering::Greater,
            Op::Ge => o != Ordering::Less,
        }
    }
}

#[derive(Debug, Clone)]
enum Lit {
    Null,
    /// Lower-cased text.
    Str(String),
    /// An 18-character id (compared exactly).
    Id(String),
    Num(f64),
    Bool(bool),
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
    /// `[start, end)` of a date function on a date field.
    DateRange(NaiveDate, NaiveDate),
    /// `[start, end)` of a date function on a datetime field.
    DtRange(DateTime<Utc>, DateTime<Utc>),
}

#[derive(Debug, Clone)]
enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    Cmp(FieldRef, Op, Lit),
    In(FieldRef, bool, Vec<Lit>),
    Like(FieldRef, Vec<char>),
    Includes(FieldRef, bool, Vec<Vec<String>>),
}

#[derive(Debug, Clone)]
struct OrderItem {
    field: FieldRef,
    desc: bool,
    nulls_first: bool,
}

#[derive(Debug, Clone)]
pub enum Select {
    /// `COUNT()`: only `totalSize`.
    Count,
    /// `COUNT(field) [alias]`: one aggregate row.
    CountField(String),
    Fields(Vec<FieldRef>),
}

/// A parsed, resolved query.
#[derive(Debug, Clone)]
pub struct Query {
    pub obj: usize,
    pub select: Select,
    filter: Option<Cond>,
    order: Vec<OrderItem>,
    pub limit: Option<usize>,
    pub offset: usize,
}

// ---------------------------------------------------------------- lexer

fn lex(src: &str) -> Result<Vec<Token>, (usize, String)> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let tok = if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err((start, "unexpected token: <EOF>".into())),
                    Some('\\') => {
                        let e = chars.get(i + 1).copied().unwrap_or('\\');
                        s.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            other => other,
                        });
                        if e == '%' || e == '_' {
                            // Keep LIKE escapes visible to the LIKE matcher.
                            s.pop();
                            s.push('\\');
                            s.push(e);
                        }
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            Tok::Str(s)
        } else if c.is_ascii_digit() || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) {
            let mut j = i + 1;
            while j < chars.len() && (chars[j].is_ascii_alphanumeric() || "-:.+".contains(chars[j])) {
                j += 1;
            }
            let word: String = chars[i..j].iter().collect();
            if let Ok(d) = NaiveDate::parse_from_str(&word, "%Y-%m-%d") {
                i = j;
                Tok::Date(d)
            } else if word.len() > 10 && word.as_bytes().get(10) == Some(&b'T') {
                let t = parse_datetime(&word)
                    .ok_or((start, format!("line 1:{start} no viable alternative at character ' '")))?;
                i = j;
                Tok::DateTime(t)
            } else {
                let mut k = i + 1;
                while k < chars.len() && (chars[k].is_ascii_digit() || chars[k] == '.') {
                    k += 1;
                }
                let num: String = chars[i..k].iter().collect();
                let n = num.parse::<f64>().map_err(|_| (start, format!("unexpected token: {num}")))?;
                i = k;
                Tok::Num(n)
            }
        } else if c.is_alphabetic() || c == '_' {
            let mut j = i + 1;
            while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            let word: String = chars[i..j].iter().collect();
            i = j;
            Tok::Ident(word)
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let sym = ["!=", "<>", "<=", ">="].into_iter().find(|s| *s == two);
            match sym {
                Some(s) => {
                    i += 2;
                    Tok::Sym(s)
                }
                None => {
                    let s = match c {
                        '(' => "(",
                        ')' => ")",
                        ',' => ",",
                        '=' => "=",
                        '<' => "<",
                        '>' => ">",
                        '.' => ".",
                        ':' => ":",
                        _ => {
                            return Err((
                                start,
                                format!("line 1:{start} no viable alternative at character '{c}'"),
                            ));
                        }
                    };
                    i += 1;
                    Tok::Sym(s)
                }
            }
        };
        out.push(Token { tok, pos: start, text: chars[start..i].iter().collect() });
    }
    out.push(Token { tok: Tok::Eof, pos: chars.len(), text: "<EOF>".into() });
    Ok(out)
}

// ---------------------------------------------------------------- parser

/// Formats a query error the way Salesforce does.
fn query_error(src: &str, pos: usize, code: &str, detail: &str) -> SfError {
    let before: String = src.chars().take(pos).collect();
    let row = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let line = src.lines().nth(row - 1).unwrap_or("");
    let caret = " ".repeat(col - 1);
    SfError::bad_request(code, format!("\n{line}\n{caret}^\nERROR at Row:{row}:Column:{col}\n{detail}"))
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    i: usize,
    store: &'a Store,
    now: DateTime<Utc>,
    obj: usize,
}

const RESERVED: &[&str] = &[
    "select", "from", "where", "and", "or", "not", "in", "like", "order", "by", "limit", "offset", "asc",
    "desc", "nulls", "first", "last", "includes", "excludes", "null", "true", "false", "group", "having",
];

impl<'a> Parser<'a> {
    fn peek(&self) -> &Token {
        &self.toks[self.i.min(self.toks.len() - 1)]
    }
    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        self.i += 1;
        t
    }
    fn err(&self, pos: usize, code: &str, detail: &str) -> SfError {
        query_error(self.src, pos, code, detail)
    }
    fn unexpected(&self) -> SfError {
        let t = self.peek();
        self.err(t.pos, "MALFORMED_QUERY", &format!("unexpected token: {}", t.text))
    }
    fn is_kw(&self, kw: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(w) if w.eq_ignore_ascii_case(kw))
    }
    fn eat_kw(&mut self, kw: &str) -> bool {
        let hit = self.is_kw(kw);
        if hit {
            self.i += 1;
        }
        hit
    }
    fn expect_kw(&mut self, kw: &str) -> Result<(), SfError> {
        if self.eat_kw(kw) { Ok(()) } else { Err(self.unexpected()) }
    }
    fn is_sym(&self, s: &str) -> bool {
        matches!(&self.peek().tok, Tok::Sym(x) if *x == s)
    }
    fn eat_sym(&mut self, s: &str) -> bool {
        let hit = self.is_sym(s);
        if hit {
            self.i += 1;
        }
        hit
    }
    fn expect_sym(&mut self, s: &str) -> Result<(), SfError> {
        if self.eat_sym(s) { Ok(()) } else { Err(self.unexpected()) }
    }

    /// `Name` or `Account.Name` as written, with its position.
    fn raw_path(&mut self) -> Result<(Vec<String>, usize), SfError> {
        let t = self.next();
        let Tok::Ident(first) = t.tok else {
            self.i -= 1;
            return Err(self.unexpected());
        };
        let mut parts = vec![first];
        while self.eat_sym(".") {
            match self.next().tok {
                Tok::Ident(p) => parts.push(p),
                _ => {
                    self.i -= 1;
                    return Err(self.unexpected());
                }
            }
        }
        Ok((parts, t.pos))
    }

    fn resolve(&self, parts: &[String], pos: usize) -> Result<FieldRef, SfError> {
        let def = &self.store.schema[self.obj];
        let no_column = |name: &str| {
            self.err(
                pos,
                "INVALID_FIELD",
                &format!(
                    "No such column '{name}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
                    def.name
                ),
            )
        };
        // A leading object name qualifies the field: `Lead.Email`.
        let parts =
            if parts.len() > 1 && parts[0].eq_ignore_ascii_case(def.name) { &parts[1..] } else { parts };
        match parts {
            [name] => {
                let f = def.field(name).ok_or_else(|| no_column(name))?;
                let fd = def.def(f);
                Ok(FieldRef {
                    path: fd.name.clone(),
                    rel: None,
                    field: f,
                    field_name: fd.name.clone(),
                    ftype: fd.ftype,
                })
            }
            [rel, name] => {
                let rf = def.relationship(rel).ok_or_else(|| {
                    self.err(
                        pos,
                        "INVALID_FIELD",
                        &format!(
                            "Didn't understand relationship '{rel}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."
                        ),
                    )
                })?;
                let rd = def.def(rf);
                let rel_name = rd.relationship_name.clone().unwrap_or_default();
                let target = rd.reference_to.iter().find_map(|t| self.store.object(t));
                let (field_name, ftype) = match (target, rd.reference_to.iter().any(|t| t == "User")) {
                    (Some(t), _) => {
                        let td = &self.store.schema[t];
                        let f = td.field(name).ok_or_else(|| {
                            self.err(
                                pos,
                                "INVALID_FIELD",
                                &format!(
                                    "No such column '{name}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
                                    td.name
                                ),
                            )
                        })?;
                        (td.def(f).name.clone(), td.def(f).ftype)
                    }
                    // No User object: only its Id resolves (to nothing).
                    (None, true) if name.eq_ignore_ascii_case("Id") => ("Id".to_string(), FieldType::Id),
                    _ => return Err(no_column(&format!("{rel}.{name}"))),
                };
                Ok(FieldRef {
                    path: format!("{rel_name}.{field_name}"),
                    rel: Some((rf, rel_name)),
                    field: 0,
                    field_name,
                    ftype,
                })
            }
            _ => Err(no_column(&parts.join("."))),
        }
    }

    fn parse(&mut self) -> Result<Query, SfError> {
        self.expect_kw("select")?;
        enum Item {
            Count,
            CountField(String),
            Fields(String, usize),
            Path(Vec<String>, usize),
        }
        let mut items = Vec::new();
        loop {
            if self.is_kw("count") && self.toks.get(self.i + 1).is_some_and(|t| t.tok == Tok::Sym("(")) {
                self.i += 2;
                if self.eat_sym(")") {
                    items.push(Item::Count);
                } else {
                    self.raw_path()?;
                    self.expect_sym(")")?;
                    let alias = match &self.peek().tok {
                        Tok::Ident(a) if !RESERVED.contains(&a.to_ascii_lowercase().as_str()) => {
                            let a = a.clone();
                            self.i += 1;
                            a
                        }
                        _ => "expr0".to_string(),
                    };
                    items.push(Item::CountField(alias));
                }
            } else if self.is_kw("fields")
                && self.toks.get(self.i + 1).is_some_and(|t| t.tok == Tok::Sym("("))
            {
                let pos = self.peek().pos;
                self.i += 2;
                let (kind, _) = self.raw_path()?;
                self.expect_sym(")")?;
                items.push(Item::Fields(kind.join(".").to_ascii_uppercase(), pos));
            } else {
                let (p, pos) = self.raw_path()?;
                if RESERVED.contains(&p[0].to_ascii_lowercase().as_str()) && p.len() == 1 {
                    self.i -= 1;
                    return Err(self.unexpected());
                }
                items.push(Item::Path(p, pos));
            }
            if !self.eat_sym(",") {
                break;
            }
        }
        self.expect_kw("from")?;
        let obj_tok = self.next();
        let Tok::Ident(obj_name) = &obj_tok.tok else {
            self.i -= 1;
            return Err(self.unexpected());
        };
        self.obj = self.store.object(obj_name).ok_or_else(|| {
            self.err(
                obj_tok.pos,
                "INVALID_TYPE",
                &format!(
                    "sObject type '{obj_name}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."
                ),
            )
        })?;
        let select = match items.as_slice() {
            [Item::Count] => Select::Count,
            [Item::CountField(alias)] => Select::CountField(alias.clone()),
            _ => {
                let mut fields: Vec<FieldRef> = Vec::new();
                for item in &items {
                    let mut add = |f: FieldRef| {
                        if !fields.iter().any(|x| x.path == f.path) {
                            fields.push(f);
                        }
                    };
                    match item {
                        Item::Path(p, pos) => add(self.resolve(p, *pos)?),
                        Item::Fields(kind, pos) => {
                            let def = &self.store.schema[self.obj];
                            for fd in &def.fields {
                                let take = match kind.as_str() {
                                    "ALL" => true,
                                    "STANDARD" => !fd.custom,
                                    "CUSTOM" => fd.custom,
                                    _ => {
                                        return Err(self.err(
                                            *pos,
                                            "MALFORMED_QUERY",
                                            &format!("unexpected token: {kind}"),
                                        ));
                                    }
                                };
                                if take {
                                    add(self.resolve(std::slice::from_ref(&fd.name), *pos)?);
                                }
                            }
                        }
                        Item::Count | Item::CountField(_) => {
                            return Err(self.err(0, "MALFORMED_QUERY", "Grouped query cannot use child relationships or mix aggregates with fields without GROUP BY"));
                        }
                    }
                }
                Select::Fields(fields)
            }
        };
        let filter = if self.eat_kw("where") { Some(self.cond()?) } else { None };
        let mut order = Vec::new();
        if self.eat_kw("order") {
            self.expect_kw("by")?;
            loop {
                let (p, pos) = self.raw_path()?;
                let field = self.resolve(&p, pos)?;
                if field.rel.is_none() && !self.store.schema[self.obj].def(field.field).filterable() {
                    return Err(self.err(
                        pos,
                        "INVALID_FIELD",
                        &format!("field '{}' can not be sorted in a query call", field.path),
                    ));
                }
                let desc = if self.eat_kw("desc") {
                    true
                } else {
                    self.eat_kw("asc");
                    false
                };
                let nulls_first = if self.eat_kw("nulls") {
                    if self.eat_kw("first") {
                        true
                    } else {
                        self.expect_kw("last")?;
                        false
                    }
                } else {
                    !desc
                };
                order.push(OrderItem { field, desc, nulls_first });
                if !self.eat_sym(",") {
                    break;
                }
            }
        }
        let mut limit = None;
        let mut offset = 0;
        if self.eat_kw("limit") {
            limit = Some(self.count_literal()?);
        }
        if self.eat_kw("offset") {
            let pos = self.peek().pos;
            offset = self.count_literal()?;
            if offset > 2000 {
                return Err(self.err(
                    pos,
                    "NUMBER_OUTSIDE_VALID_RANGE",
                    "Maximum SOQL offset allowed is 2000",
                ));
            }
        }
        if self.peek().tok != Tok::Eof {
            return Err(self.unexpected());
        }
        Ok(Query { obj: self.obj, select, filter, order, limit, offset })
    }

    fn count_literal(&mut self) -> Result<usize, SfError> {
        match self.next().tok {
            Tok::Num(n) if n >= 0.0 && n.fract() == 0.0 => Ok(n as usize),
            _ => {
                self.i -= 1;
                Err(self.unexpected())
            }
        }
    }

    /// Conditions: one level is all-AND or all-OR (SOQL needs parentheses to mix).
    fn cond(&mut self) -> Result<Cond, SfError> {
        let first = self.unary()?;
        let joiner = if self.is_kw("and") {
            "and"
        } else if self.is_kw("or") {
            "or"
        } else {
            return Ok(first);
        };
        let mut parts = vec![first];
        while self.eat_kw(joiner) {
            parts.push(self.unary()?);
        }
        if self.is_kw("and") || self.is_kw("or") {
            return Err(self.unexpected());
        }
        Ok(if joiner == "and" { Cond::And(parts) } else { Cond::Or(parts) })
    }

    fn unary(&mut self) -> Result<Cond, SfError> {
        if self.eat_kw("not") {
            return Ok(Cond::Not(Box::new(self.unary()?)));
        }
        if self.eat_sym("(") {
            let c = self.cond()?;
            self.expect_sym(")")?;
            return Ok(c);
        }
        let (p, pos) = self.raw_path()?;
        let field = self.resolve(&p, pos)?;
        if field.rel.is_none() && !self.store.schema[self.obj].def(field.field).filterable() {
            return Err(self.err(
                pos,
                "INVALID_FIELD",
                &format!("field '{}' can not be filtered in a query call", field.path),
            ));
        }
        if self.eat_kw("like") {
            if !field.ftype.is_text() {
                return Err(self.err(
                    pos,
                    "INVALID_FIELD",
                    &format!("invalid operator on field '{}'", field.path),
                ));
            }
            let t = self.next();
            return match t.tok {
                Tok::Str(s) => Ok(Cond::Like(field, s.to_lowercase().chars().collect())),
                _ => {
                    self.i -= 1;
                    Err(self.unexpected())
                }
            };
        }
        if self.is_kw("includes") || self.is_kw("excludes") {
            let excludes = self.is_kw("excludes");
            self.i += 1;
            if field.ftype != FieldType::Multipicklist {
                return Err(self.err(
                    pos,
                    "INVALID_FIELD",
                    "includes or excludes operator only valid on multipicklist field",
                ));
            }
            self.expect_sym("(")?;
            let mut groups = Vec::new();
            loop {
                match self.next().tok {
                    Tok::Str(s) => groups.push(
                        s.split(';').map(|p| p.trim().to_lowercase()).filter(|p| !p.is_empty()).collect(),
                    ),
                    _ => {
                        self.i -= 1;
                        return Err(self.unexpected());
                    }
                }
                if !self.eat_sym(",") {
                    break;
                }
            }
            self.expect_sym(")")?;
            return Ok(Cond::Includes(field, excludes, groups));
        }
        let negated = self.eat_kw("not");
        if self.eat_kw("in") {
            self.expect_sym("(")?;
            let mut lits = Vec::new();
            loop {
                lits.push(self.literal(&field)?);
                if !self.eat_sym(",") {
                    break;
                }
            }
            self.expect_sym(")")?;
            return Ok(Cond::In(field, negated, lits));
        }
        if negated {
            self.i -= 1;
            return Err(self.unexpected());
        }
        let op = match self.next().tok {
            Tok::Sym("=") => Op::Eq,
            Tok::Sym("!=") | Tok::Sym("<>") => Op::Ne,
            Tok::Sym("<") => Op::Lt,
            Tok::Sym("<=") => Op::Le,
            Tok::Sym(">") => Op::Gt,
            Tok::Sym(">=") => Op::Ge,
            _ => {
                self.i -= 1;
                return Err(self.unexpected());
            }
        };
        let lit = self.literal(&field)?;
        Ok(Cond::Cmp(field, op, lit))
    }

    /// A literal, checked against the field's type the way SOQL checks it.
    fn literal(&mut self, field: &FieldRef) -> Result<Lit, SfError> {
        let t = self.next();
        let ft = field.ftype;
        let type_name = match ft {
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::Datetime => "dateTime",
            FieldType::Int => "int",
            FieldType::Currency | FieldType::Double | FieldType::Percent => "double",
            _ => "string",
        };
        let mismatch = |quoted_wanted: bool| {
            self.err(
                t.pos,
                "INVALID_FIELD",
                &format!(
                    "value of filter criterion for field '{}' must be of type {type_name} and should {}be enclosed in quotes",
                    field.path,
                    if quoted_wanted { "" } else { "not " }
                ),
            )
        };
        let lit = match (&t.tok, ft) {
            (Tok::Ident(w), _) if w.eq_ignore_ascii_case("null") => Lit::Null,
            (Tok::Str(s), _) if field.is_id() => {
                let id = SfId::parse(s).ok_or_else(|| {
                    self.err(t.pos, "INVALID_QUERY_FILTER_OPERATOR", &format!("invalid ID field: {s}"))
                })?;
                Lit::Id(id.to_string())
            }
            (Tok::Str(s), t) if t.is_text() => Lit::Str(s.to_lowercase()),
            (_, t) if t.is_text() => return Err(mismatch(true)),
            (Tok::Ident(w), FieldType::Boolean) if w.eq_ignore_ascii_case("true") => Lit::Bool(true),
            (Tok::Ident(w), FieldType::Boolean) if w.eq_ignore_ascii_case("false") => Lit::Bool(false),
            (Tok::Num(n), t) if t.is_number() => Lit::Num(*n),
            (Tok::Date(d), FieldType::Date) => Lit::Date(*d),
            (Tok::DateTime(d), FieldType::Datetime) => Lit::DateTime(*d),
            (Tok::Ident(w), FieldType::Date | FieldType::Datetime) => {
                let (a, b) = self.date_function(w, t.pos)?;
                if ft == FieldType::Date {
                    Lit::DateRange(a, b)
                } else {
                    let at = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map_or(self.now, |n| n.and_utc());
                    Lit::DtRange(at(a), at(b))
                }
            }
            (Tok::Str(_), _) => return Err(mismatch(false)),
            _ => return Err(mismatch(false)),
        };
        Ok(lit)
    }

    fn date_function(&mut self, w: &str, pos: usize) -> Result<(NaiveDate, NaiveDate), SfError> {
        let today = self.now.date_naive();
        let day = Duration::days(1);
        let upper = w.to_ascii_uppercase();
        let n_days = |p: &mut Self| -> Result<i64, SfError> {
            p.expect_sym(":")?;
            match p.next().tok {
                Tok::Num(n) if n >= 0.0 => Ok(n as i64),
                _ => {
                    p.i -= 1;
                    Err(p.unexpected())
                }
            }
        };
        Ok(match upper.as_str() {
            "TODAY" => (today, today + day),
            "YESTERDAY" => (today - day, today),
            "TOMORROW" => (today + day, today + day + day),
            "LAST_N_DAYS" => {
                let n = n_days(self)?;
                (today - Duration::days(n), today + day)
            }
            "NEXT_N_DAYS" => {
                let n = n_days(self)?;
                (today + day, today + day + Duration::days(n))
            }
            "THIS_MONTH" => {
                let start = today.with_day(1).unwrap_or(today);
                let next = if start.month() == 12 {
                    NaiveDate::from_ymd_opt(start.year() + 1, 1, 1)
                } else {
                    NaiveDate::from_ymd_opt(start.year(), start.month() + 1, 1)
                };
                (start, next.unwrap_or(today))
            }
            _ => return Err(self.err(pos, "MALFORMED_QUERY", &format!("unexpected token: {w}"))),
        })
    }
}

/// Parses `src` against the store's schema.
pub fn parse(src: &str, store: &Store, now: DateTime<Utc>) -> Result<Query, SfError> {
    let toks = lex(src).map_err(|(pos, msg)| query_error(src, pos, "MALFORMED_QUERY", &msg))?;
    Parser { src, toks, i: 0, store, now, obj: 0 }.parse()
}

// ---------------------------------------------------------------- evaluation

fn cmp_text(a: &str, lowered: &str) -> Ordering {
    a.chars().flat_map(char::to_lowercase).cmp(lowered.chars())
}

fn ordering(v: &Val, lit: &Lit) -> Option<Ordering> {
    match (v, lit) {
        (Val::Str(s), Lit::Str(l)) => Some(cmp_text(s, l)),
        (Val::Str(s), Lit::Id(l)) => Some(s.as_bytes().cmp(l.as_bytes())),
        (Val::Num(a), Lit::Num(b)) => a.partial_cmp(b),
        (Val::Bool(a), Lit::Bool(b)) => Some(a.cmp(b)),
        (Val::Date(a), Lit::Date(b)) => Some(a.cmp(b)),
        (Val::DateTime(a), Lit::DateTime(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

fn in_range<T: Ord>(op: Op, v: T, a: T, b: T) -> bool {
    match op {
        Op::Eq => a <= v && v < b,
        Op::Ne => !(a <= v && v < b),
        Op::Lt => v < a,
        Op::Le => v < b,
        Op::Gt => v >= b,
        Op::Ge => v >= a,
    }
}

fn test(op: Op, v: Option<&Val>, lit: &Lit) -> bool {
    match (v, lit) {
        (None, Lit::Null) => op == Op::Eq,
        (None, _) => op == Op::Ne,
        (Some(_), Lit::Null) => op == Op::Ne,
        (Some(Val::Date(d)), Lit::DateRange(a, b)) => in_range(op, d, a, b),
        (Some(Val::DateTime(t)), Lit::DtRange(a, b)) => in_range(op, t, a, b),
        (Some(v), lit) => ordering(v, lit).is_some_and(|o| op.holds(o)),
    }
}

fn like(text: &[char], pat: &[char]) -> bool {
    // Iterative wildcard match with backtracking on the last `%`.
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        let (pc, escaped) = match pat.get(p) {
            Some('\\') if matches!(pat.get(p + 1), Some('%' | '_')) => (pat.get(p + 1).copied(), true),
            other => (other.copied(), false),
        };
        match pc {
            Some('%') if !escaped => {
                star = Some((p + 1, t));
                p += 1;
                continue;
            }
            Some(c) if (c == '_' && !escaped) || c == text[t] => {
                t += 1;
                p += if escaped { 2 } else { 1 };
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, st)) => {
                p = sp;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    while pat.get(p) == Some(&'%') {
        p += 1;
    }
    p == pat.len()
}

impl Query {
    fn eval(&self, c: &Cond, store: &Store, rec: &Record) -> bool {
        match c {
            Cond::And(cs) => cs.iter().all(|c| self.eval(c, store, rec)),
            Cond::Or(cs) => cs.iter().any(|c| self.eval(c, store, rec)),
            Cond::Not(c) => !self.eval(c, store, rec),
            Cond::Cmp(f, op, lit) => test(*op, f.get(store, self.obj, rec).as_deref(), lit),
            Cond::In(f, negated, lits) => {
                let v = f.get(store, self.obj, rec);
                lits.iter().any(|l| test(Op::Eq, v.as_deref(), l)) != *negated
            }
            Cond::Like(f, pat) => f
                .get(store, self.obj, rec)
                .and_then(|v| v.as_str().map(|s| s.to_lowercase().chars().collect::<Vec<_>>()))
                .is_some_and(|text| like(&text, pat)),
            Cond::Includes(f, excludes, groups) => {
                let v = f.get(store, self.obj, rec);
                let have: Vec<String> = v
                    .as_deref()
                    .and_then(Val::as_str)
                    .map(|s| s.split(';').map(str::to_lowercase).collect())
                    .unwrap_or_default();
                let hit = groups.iter().any(|g| g.iter().all(|x| have.contains(x)));
                hit != *excludes
            }
        }
    }

    pub fn matches(&self, store: &Store, rec: &Record) -> bool {
        self.filter.as_ref().is_none_or(|c| self.eval(c, store, rec))
    }

    fn cmp_records(&self, store: &Store, a: &Record, b: &Record) -> Ordering {
        for item in &self.order {
            let va = item.field.get(store, self.obj, a);
            let vb = item.field.get(store, self.obj, b);
            let o = match (va.as_deref(), vb.as_deref()) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => return if item.nulls_first { Ordering::Less } else { Ordering::Greater },
                (Some(_), None) => return if item.nulls_first { Ordering::Greater } else { Ordering::Less },
                (Some(x), Some(y)) => {
                    let o = match (x, y) {
                        (Val::Str(s), Val::Str(t)) if item.field.is_id() => s.cmp(t),
                        (Val::Str(s), Val::Str(t)) => s.to_lowercase().cmp(&t.to_lowercase()),
                        (Val::Num(s), Val::Num(t)) => s.partial_cmp(t).unwrap_or(Ordering::Equal),
                        (Val::Bool(s), Val::Bool(t)) => s.cmp(t),
                        (Val::Date(s), Val::Date(t)) => s.cmp(t),
                        (Val::DateTime(s), Val::DateTime(t)) => s.cmp(t),
                        _ => Ordering::Equal,
                    };
                    if item.desc { o.reverse() } else { o }
                }
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        a.id.cmp(&b.id)
    }

    /// Ids named by a top-level `Id = / IN` or indexed-field `= / IN` condition.
    fn candidates(&self, store: &Store, c: &Cond, include_deleted: bool) -> Option<Vec<SfId>> {
        let from_lits = |f: &FieldRef, lits: &[Lit]| -> Option<Vec<SfId>> {
            if f.rel.is_some() {
                return None;
            }
            let def = store.schema[self.obj].def(f.field);
            let table = &store.tables[self.obj];
            if def.source == Source::Id {
                return Some(
                    lits.iter()
                        .filter_map(|l| if let Lit::Id(s) = l { SfId::parse(s) } else { None })
                        .filter(|id| table.records.contains_key(id))
                        .collect(),
                );
            }
            if include_deleted {
                return None;
            }
            let index = table.indexes.get(&f.field)?;
            let mut out = Vec::new();
            for l in lits {
                match l {
                    Lit::Str(s) | Lit::Id(s) => {
                        out.extend(index.get(s.to_lowercase().as_str()).into_iter().flatten().copied())
                    }
                    _ => return None,
                }
            }
            out.sort();
            out.dedup();
            Some(out)
        };
        match c {
            Cond::Cmp(f, Op::Eq, lit) => from_lits(f, std::slice::from_ref(lit)),
            Cond::In(f, false, lits) => from_lits(f, lits),
            Cond::And(cs) => cs.iter().find_map(|c| self.candidates(store, c, include_deleted)),
            _ => None,
        }
    }

    /// The smallest `SystemModstamp` any match can have.
    fn modstamp_floor(&self, store: &Store, c: &Cond) -> Option<DateTime<Utc>> {
        let is_ms = |f: &FieldRef| {
            f.rel.is_none() && store.schema[self.obj].def(f.field).source == Source::SystemModstamp
        };
        match c {
            Cond::Cmp(f, Op::Gt | Op::Ge | Op::Eq, Lit::DateTime(t)) if is_ms(f) => Some(*t),
            Cond::Cmp(f, Op::Gt | Op::Ge | Op::Eq, Lit::DtRange(a, _)) if is_ms(f) => Some(*a),
            Cond::And(cs) => cs.iter().filter_map(|c| self.modstamp_floor(store, c)).max(),
            Cond::Or(cs) => cs
                .iter()
                .map(|c| self.modstamp_floor(store, c))
                .collect::<Option<Vec<_>>>()?
                .into_iter()
                .min(),
            _ => None,
        }
    }

    /// Whether the ordering is the `(SystemModstamp, Id)` index order: `Some(desc)`.
    fn modstamp_order(&self, store: &Store) -> Option<bool> {
        let src =
            |i: &OrderItem| (i.field.rel.is_none()).then(|| store.schema[self.obj].def(i.field.field).source);
        match self.order.as_slice() {
            [a] if src(a) == Some(Source::SystemModstamp) => Some(a.desc),
            [a, b]
                if src(a) == Some(Source::SystemModstamp)
                    && src(b) == Some(Source::Id)
                    && a.desc == b.desc =>
            {
                Some(a.desc)
            }
            _ => None,
        }
    }

    fn id_order(&self, store: &Store) -> Option<bool> {
        match self.order.as_slice() {
            [] => Some(false),
            [a] if a.field.rel.is_none()
                && store.schema[self.obj].def(a.field.field).source == Source::Id =>
            {
                Some(a.desc)
            }
            _ => None,
        }
    }

    /// Runs the query: the ids of the rows (after ORDER BY, OFFSET, LIMIT) and
    /// the number of rows before OFFSET/LIMIT were applied is not needed by the
    /// API, so `totalSize` is the row count.
    pub fn run(&self, store: &Store, include_deleted: bool) -> Vec<SfId> {
        let table = &store.tables[self.obj];
        let keep = |r: &Record| (include_deleted || r.deleted.is_none()) && self.matches(store, r);
        let count_only = matches!(self.select, Select::Count | Select::CountField(_));
        let want = if count_only { None } else { self.limit.map(|l| l + self.offset) };
        let finish = |mut rows: Vec<&Record>, sorted: bool| -> Vec<SfId> {
            if !sorted {
                rows.sort_by(|a, b| self.cmp_records(store, a, b));
            }
            let rows = rows.into_iter().skip(if count_only { 0 } else { self.offset });
            match (count_only, self.limit) {
                (false, Some(l)) => rows.take(l).map(|r| r.id).collect(),
                _ => rows.map(|r| r.id).collect(),
            }
        };
        let filter = self.filter.as_ref();
        if let Some(ids) = filter.and_then(|c| self.candidates(store, c, include_deleted)) {
            let rows = ids.iter().filter_map(|id| table.records.get(id)).filter(|r| keep(r)).collect();
            return finish(rows, false);
        }
        let floor = filter.and_then(|c| self.modstamp_floor(store, c));
        let take_until = |iter: &mut dyn Iterator<Item = &SfId>| -> Vec<&Record> {
            let mut rows = Vec::new();
            for id in iter {
                if let Some(r) = table.records.get(id)
                    && keep(r)
                {
                    rows.push(r);
                    if want.is_some_and(|w| rows.len() >= w) {
                        break;
                    }
                }
            }
            rows
        };
        let ms_range = || {
            table
                .by_modstamp
                .range((floor.unwrap_or(DateTime::<Utc>::MIN_UTC), SfId::MIN)..)
                .map(|(_, id)| id)
        };
        if let Some(desc) = self.modstamp_order(store) {
            let rows = if desc { take_until(&mut ms_range().rev()) } else { take_until(&mut ms_range()) };
            return finish(rows, true);
        }
        if let Some(desc) = self.id_order(store) {
            if floor.is_some() && self.order.is_empty() {
                return finish(take_until(&mut ms_range()), true);
            }
            let rows = if desc {
                take_until(&mut table.records.keys().rev())
            } else {
                take_until(&mut table.records.keys())
            };
            return finish(rows, true);
        }
        let rows = if floor.is_some() {
            ms_range().filter_map(|id| table.records.get(id)).filter(|r| keep(r)).collect()
        } else {
            table.records.values().filter(|r| keep(r)).collect()
        };
        finish(rows, false)
    }

    /// One result row as the REST API returns it.
    pub fn render(&self, store: &Store, rec: &Record, version: &str) -> J {
        let Select::Fields(fields) = &self.select else { return J::V(Value::Null) };
        let mut out = J::obj().put("attributes", store.attributes(self.obj, &rec.id, version));
        let mut done_rels: Vec<&str> = Vec::new();
        for f in fields {
            match &f.rel {
                None => out.push(f.path.clone(), store.value_json(self.obj, rec, f.field)),
                Some((ref_field, rel)) => {
                    if done_rels.contains(&rel.as_str()) {
                        continue;
                    }
                    done_rels.push(rel);
                    let target =
                        rec.get(*ref_field).and_then(Val::as_str).and_then(SfId::parse).and_then(|id| {
                            store
                                .object_of_id(&id)
                                .and_then(|t| store.tables[t].records.get(&id).map(|r| (t, r)))
                        });
                    let nested = match target {
                        None => J::V(Value::Null),
                        Some((t, r)) => {
                            let mut o = J::obj().put("attributes", store.attributes(t, &r.id, version));
                            for g in fields.iter().filter(|g| g.rel.as_ref().is_some_and(|(_, n)| n == rel)) {
                                let v = store.schema[t]
                                    .field(&g.field_name)
                                    .map_or(Value::Null, |i| store.value_json(t, r, i));
                                o.push(g.field_name.clone(), v);
                            }
                            o.done()
                        }
                    };
                    out.push(rel.clone(), nested);
                }
            }
        }
        out.done()
    }

    /// Column names and values for Bulk API CSV results.
    pub fn csv_header(&self) -> Vec<String> {
        match &self.select {
            Select::Fields(fields) => fields.iter().map(|f| f.path.clone()).collect(),
            Select::Count | Select::CountField(_) => vec!["expr0".into()],
        }
    }

    pub fn csv_row(&self, store: &Store, rec: &Record) -> Vec<String> {
        let Select::Fields(fields) = &self.select else { return Vec::new() };
        fields
            .iter()
            .map(|f| {
                let integer = f.ftype == FieldType::Int;
                f.get(store, self.obj, rec).map(|v| v.to_csv(integer)).unwrap_or_default()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::salesforce::store::WriteCtx;

    fn store_with(n: usize) -> Store {
        let mut s = Store::default();
        let lead = s.object("Lead").unwrap_or(0);
        let t0 = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        for i in 0..n {
            let body = serde_json::json!({"LastName": format!("L{i}"), "Company": "Acme", "Email": format!("u{i}@x.com")});
            let ch = s.changes_from_json(lead, body.as_object().expect("obj"), &[]).expect("fields");
            let now = t0 + Duration::seconds((i / 3) as i64);
            s.create(lead, ch, &WriteCtx { now, admin: false, allow_duplicates: false }).expect("created");
        }
        s
    }

    #[test]
    fn compound_cursor_over_shared_modstamps() {
        let s = store_with(9);
        let soql = format!(
            "SELECT Id FROM Lead WHERE SystemModstamp > 2024-01-01T00:00:00Z OR (SystemModstamp = 2024-01-01T00:00:00Z AND Id > '{}') ORDER BY SystemModstamp, Id LIMIT 4",
            SfId::mint("00Q", 2)
        );
        let q = parse(&soql, &s, Utc::now()).expect("parses");
        let ids = q.run(&s, false);
        assert_eq!(ids.len(), 4);
        assert_eq!(ids[0].to_string(), SfId::mint("00Q", 3).to_string());
    }

    #[test]
    fn errors_look_like_salesforce() {
        let s = store_with(0);
        let e = parse("SELECT Foo FROM Lead", &s, Utc::now()).expect_err("bad field");
        assert_eq!(e.code, "INVALID_FIELD");
        assert!(e.message.contains("ERROR at Row:1:Column:8"), "{}", e.message);
        let e = parse("SELECT Id FROM Lead WHERE", &s, Utc::now()).expect_err("eof");
        assert_eq!(e.code, "MALFORMED_QUERY");
        let e =
            parse("SELECT Id FROM Lead WHERE A = 1 AND B = 2 OR C = 3", &s, Utc::now()).expect_err("mixed");
        assert_eq!(e.code, "INVALID_FIELD"); // `A` is resolved first
        let e = parse(
            "SELECT Id FROM Lead WHERE Email = 'a' AND LastName = 'b' OR Company = 'c'",
            &s,
            Utc::now(),
        )
        .expect_err("mixed");
        assert_eq!(e.code, "MALFORMED_QUERY");
        let e = parse("SELECT Id FROM Lead WHERE CreatedDate > '2020-01-01'", &s, Utc::now())
            .expect_err("quoted");
        assert!(e.message.contains("must be of type dateTime and should not be enclosed in quotes"));
        let e = parse("SELECT Id FROM Nope", &s, Utc::now()).expect_err("type");
        assert_eq!(e.code, "INVALID_TYPE");
    }

    #[test]
    fn like_and_in() {
        let s = store_with(12);
        let q = parse("SELECT Id, Email FROM Lead WHERE Email LIKE 'U1%' AND LastName NOT IN ('L1') ORDER BY Email DESC", &s, Utc::now())
            .expect("parses");
        assert_eq!(q.run(&s, false).len(), 2); // u10, u11
        assert!(like(&"abc".chars().collect::<Vec<_>>(), &"a%c".chars().collect::<Vec<_>>()));
        assert!(!like(&"abd".chars().collect::<Vec<_>>(), &"a_c".chars().collect::<Vec<_>>()));
    }
}
