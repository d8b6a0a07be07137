//! Route template syntax: what matchit takes, less what a user almost
//! certainly did not mean, or no request path could match.

use crate::{
    limits::{MAX_TEMPLATE_LEN, MAX_TEMPLATE_PARAMS},
    TemplateError,
};

/// Rejects what matchit would take as literal text but the user almost
/// certainly meant as a parameter, what it would panic on, and templates no
/// request path can match.
pub(crate) fn check(template: &str) -> Result<(), TemplateError> {
    if template.len() > MAX_TEMPLATE_LEN {
        return Err(TemplateError::TooLong {
            max: MAX_TEMPLATE_LEN,
        });
    }
    if !template.starts_with('/') {
        return Err(TemplateError::NoLeadingSlash);
    }
    let legacy = template
        .split('/')
        .any(|segment| segment.len() > 1 && (segment.starts_with(':') || segment.starts_with('*')));
    if legacy {
        let suggestion: Vec<String> = template
            .split('/')
            .map(|segment| match segment.as_bytes().first() {
                Some(b':') if segment.len() > 1 => format!("{{{}}}", &segment[1..]),
                Some(b'*') if segment.len() > 1 => format!("{{*{}}}", &segment[1..]),
                _ => segment.to_owned(),
            })
            .collect();
        return Err(TemplateError::LegacySyntax {
            suggestion: suggestion.join("/"),
        });
    }
    let Some(parts) = Part::split(template) else {
        // Unbalanced braces: matchit names the problem.
        return Ok(());
    };
    check_params(template, &parts)?;
    check_literals(&parts)
}

/// A piece of a template: literal text (braces unescaped) or a parameter.
#[derive(Debug, PartialEq)]
enum Part<'a> {
    Literal(String),
    Param { name: &'a str, catch_all: bool },
}

impl<'a> Part<'a> {
    /// The parts of `template`, or `None` if its braces do not balance.
    fn split(template: &'a str) -> Option<Vec<Self>> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = template;
        while let Some(c) = rest.chars().next() {
            if let Some(after) = rest.strip_prefix("{{") {
                literal.push('{');
                rest = after;
            } else if let Some(after) = rest.strip_prefix("}}") {
                literal.push('}');
                rest = after;
            } else if c == '{' {
                let end = rest.find('}')?;
                let name = &rest[1..end];
                if !literal.is_empty() {
                    parts.push(Self::Literal(std::mem::take(&mut literal)));
                }
                parts.push(match name.strip_prefix('*') {
                    Some(name) => Self::Param {
                        name,
                        catch_all: true,
                    },
                    None => Self::Param {
                        name,
                        catch_all: false,
                    },
                });
                rest = &rest[end + 1..];
            } else if c == '}' {
                return None;
            } else {
                literal.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        if !literal.is_empty() {
            parts.push(Self::Literal(literal));
        }
        Some(parts)
    }
}

/// Parameter names: unique, no constraints, not too many.
fn check_params(template: &str, parts: &[Part<'_>]) -> Result<(), TemplateError> {
    let mut names: Vec<&str> = Vec::new();
    for part in parts {
        let Part::Param { name, .. } = part else {
            continue;
        };
        if let Some(cut) = name.find(|c: char| ":[]()+?|^$\\,<>".contains(c)) {
            let plain = &name[..cut];
            let suggestion = template.replacen(&format!("{{{name}}}"), &format!("{{{plain}}}"), 1);
            let suggestion =
                suggestion.replacen(&format!("{{*{name}}}"), &format!("{{*{plain}}}"), 1);
            return Err(TemplateError::ParameterConstraint {
                parameter: (*name).to_owned(),
                suggestion,
            });
        }
        if names.contains(name) {
            return Err(TemplateError::DuplicateParameter {
                parameter: (*name).to_owned(),
            });
        }
        names.push(name);
    }
    let params = parts
        .iter()
        .filter(|part| {
            matches!(
                part,
                Part::Param {
                    catch_all: false,
                    ..
                }
            )
        })
        .count();
    if params > MAX_TEMPLATE_PARAMS {
        return Err(TemplateError::TooManyParameters {
            count: params,
            max: MAX_TEMPLATE_PARAMS,
        });
    }
    Ok(())
}

/// Every literal character must be one a request path can hold: the path
/// of an `http::Uri` never has control characters, spaces, `?` or `#`.
fn check_literals(parts: &[Part<'_>]) -> Result<(), TemplateError> {
    for part in parts {
        let Part::Literal(text) = part else { continue };
        for c in text.chars() {
            let mut buffer = [0; 4];
            let probe = format!("/{}", c.encode_utf8(&mut buffer));
            let fits = http::uri::PathAndQuery::try_from(probe.as_str())
                .is_ok_and(|path| path.path() == probe && path.query().is_none());
            if !fits {
                return Err(TemplateError::Unmatchable { character: c });
            }
        }
    }
    Ok(())
}
