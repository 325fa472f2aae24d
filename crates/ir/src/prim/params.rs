//! Primitive parameters as generic `key=value` pairs, so that one printer and one
//! parser serve every primitive. Each family converts its typed params to and
//! from this form in its own file.

use crate::{DType, Program};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One parameter value.
#[derive(Clone, Debug, PartialEq)]
pub enum Param {
    Int(i64),
    Ints(Vec<i64>),
    Bool(bool),
    DType(DType),
    Program(Arc<Program>),
    Programs(Vec<Arc<Program>>),
}

/// Parameters read by the parser, taken one by one by a family's constructor.
#[derive(Clone, Debug, Default)]
pub struct Params {
    map: BTreeMap<String, Param>,
}

impl Params {
    pub fn new(map: BTreeMap<String, Param>) -> Params {
        Params { map }
    }

    fn take(&mut self, key: &str) -> Result<Param, String> {
        self.map.remove(key).ok_or_else(|| format!("missing parameter `{key}`"))
    }

    pub fn int(&mut self, key: &str) -> Result<i64, String> {
        match self.take(key)? {
            Param::Int(v) => Ok(v),
            other => Err(format!("parameter `{key}` should be an integer, got {other:?}")),
        }
    }

    pub fn usize(&mut self, key: &str) -> Result<usize, String> {
        let v = self.int(key)?;
        usize::try_from(v).map_err(|_| format!("parameter `{key}` should be non-negative, got {v}"))
    }

    pub fn ints(&mut self, key: &str) -> Result<Vec<i64>, String> {
        match self.take(key)? {
            Param::Ints(v) => Ok(v),
            other => Err(format!("parameter `{key}` should be a tuple of integers, got {other:?}")),
        }
    }

    pub fn usizes(&mut self, key: &str) -> Result<Vec<usize>, String> {
        self.ints(key)?
            .into_iter()
            .map(|v| {
                usize::try_from(v).map_err(|_| format!("parameter `{key}` should hold non-negative integers, got {v}"))
            })
            .collect()
    }

    pub fn bool(&mut self, key: &str) -> Result<bool, String> {
        match self.take(key)? {
            Param::Bool(v) => Ok(v),
            other => Err(format!("parameter `{key}` should be true or false, got {other:?}")),
        }
    }

    pub fn dtype(&mut self, key: &str) -> Result<DType, String> {
        match self.take(key)? {
            Param::DType(v) => Ok(v),
            other => Err(format!("parameter `{key}` should be a dtype, got {other:?}")),
        }
    }

    pub fn program(&mut self, key: &str) -> Result<Arc<Program>, String> {
        match self.take(key)? {
            Param::Program(v) => Ok(v),
            other => Err(format!("parameter `{key}` should be a program, got {other:?}")),
        }
    }

    pub fn programs(&mut self, key: &str) -> Result<Vec<Arc<Program>>, String> {
        match self.take(key)? {
            Param::Programs(v) => Ok(v),
            other => Err(format!("parameter `{key}` should be a list of programs, got {other:?}")),
        }
    }

    /// Fails if the parser read parameters the primitive does not have.
    pub fn finish(self) -> Result<(), String> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(k) => Err(format!("unknown parameter `{k}`")),
        }
    }
}

pub(crate) fn ints(v: &[usize]) -> Param {
    Param::Ints(v.iter().map(|&x| x as i64).collect())
}
