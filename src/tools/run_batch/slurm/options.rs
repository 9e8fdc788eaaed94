//! `executor` and the `slurm_*` arguments of `run_batch`: what the client may ask of
//! Slurm, checked here, turned into `sbatch` arguments (argv, never a shell line).
//!
//! The client chooses resources (partition, GPUs, CPUs, memory, time, account, QoS,
//! concurrency, shard size). Any other `sbatch` flag must start with a flag the
//! operator allowed (`serve --slurm-allow-flag`, `CTMR_SKILL_SLURM_ALLOW_FLAGS`):
//! a client cannot add `--wrap`, `--export`, `--chdir`, output paths or scripts.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::manifest::args::ArgError;

/// Volumes per array task when the client does not say: big enough that one model
/// load serves many volumes, small enough that a lost task costs little.
pub(crate) const DEFAULT_SHARD_SIZE: usize = 25;

/// How `run_batch` runs its volumes.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Executor {
    /// Here, through the run slots (the default).
    #[default]
    Local,
    /// As one Slurm job array, one shard of volumes per task.
    Slurm(SlurmOptions),
}

/// The `slurm_*` arguments after the manifest checked their types.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema, PartialEq)]
pub struct SlurmArgs {
    pub executor: Option<String>,
    pub slurm_partition: Option<String>,
    pub slurm_gpus_per_task: Option<u32>,
    pub slurm_cpus_per_task: Option<u32>,
    pub slurm_mem: Option<String>,
    pub slurm_time: Option<String>,
    pub slurm_account: Option<String>,
    pub slurm_qos: Option<String>,
    pub slurm_max_concurrent: Option<u32>,
    pub slurm_shard_size: Option<u32>,
    pub slurm_flags: Option<Vec<String>>,
}

/// A checked Slurm request.
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    pub gpus_per_task: Option<u32>,
    pub cpus_per_task: Option<u32>,
    pub mem: Option<String>,
    pub time: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    pub max_concurrent: Option<u32>,
    pub shard_size: usize,
    /// Extra flags, each allowed by the operator.
    pub flags: Vec<String>,
}

fn check(
    arg: &str,
    value: &Option<String>,
    ok: fn(char) -> bool,
    example: &str,
) -> Result<Option<String>, ArgError> {
    match value {
        Some(v) if v.is_empty() || v.len() > 128 || !v.chars().all(ok) => Err(ArgError::new(
            arg,
            format!("{v:?} is not a plain Slurm value"),
            format!("pass e.g. {example} (letters, digits and . _ - : , only)"),
        )),
        other => Ok(other.clone()),
    }
}

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._-,".contains(c)
}

impl SlurmArgs {
    /// The executor, with every Slurm value checked; `allowed` is the operator's list.
    pub fn executor(self, allowed: &[String]) -> Result<Executor, ArgError> {
        match self.executor.as_deref() {
            None | Some("local") => {
                if self.any_slurm() {
                    return Err(ArgError::new(
                        "executor",
                        "is local, but slurm_* arguments were given",
                        "pass executor: \"slurm\", or drop the slurm_* arguments",
                    ));
                }
                return Ok(Executor::Local);
            }
            Some("slurm") => {}
            Some(other) => {
                return Err(ArgError::new(
                    "executor",
                    format!("{other:?} is not local or slurm"),
                    "pass executor: \"local\" (default) or \"slurm\"",
                ))
            }
        }
        let mem_char = |c: char| c.is_ascii_alphanumeric();
        let time_char = |c: char| c.is_ascii_digit() || ":-".contains(c);
        Ok(Executor::Slurm(SlurmOptions {
            partition: check("slurm_partition", &self.slurm_partition, name_char, "gpu")?,
            gpus_per_task: self.slurm_gpus_per_task,
            cpus_per_task: self.slurm_cpus_per_task,
            mem: check("slurm_mem", &self.slurm_mem, mem_char, "16G")?,
            time: check("slurm_time", &self.slurm_time, time_char, "02:00:00")?,
            account: check("slurm_account", &self.slurm_account, name_char, "radiology")?,
            qos: check("slurm_qos", &self.slurm_qos, name_char, "normal")?,
            max_concurrent: self.slurm_max_concurrent,
            shard_size: self
                .slurm_shard_size
                .map_or(DEFAULT_SHARD_SIZE, |n| n as usize),
            flags: allowed_flags(self.slurm_flags.unwrap_or_default(), allowed)?,
        }))
    }

    fn any_slurm(&self) -> bool {
        self.slurm_partition.is_some()
            || self.slurm_gpus_per_task.is_some()
            || self.slurm_cpus_per_task.is_some()
            || self.slurm_mem.is_some()
            || self.slurm_time.is_some()
            || self.slurm_account.is_some()
            || self.slurm_qos.is_some()
            || self.slurm_max_concurrent.is_some()
            || self.slurm_shard_size.is_some()
            || self.slurm_flags.is_some()
    }
}

/// Each flag must be `--NAME` or `--NAME=VALUE` with `--NAME` on the operator's list.
fn allowed_flags(flags: Vec<String>, allowed: &[String]) -> Result<Vec<String>, ArgError> {
    for flag in &flags {
        let name = flag.split('=').next().unwrap_or_default();
        if !allowed.iter().any(|a| a == name) {
            let list = if allowed.is_empty() {
                "the operator allowed none".to_string()
            } else {
                format!("allowed: {}", allowed.join(", "))
            };
            return Err(ArgError::new(
                "slurm_flags",
                format!("{flag:?} is not an sbatch flag the operator allowed ({list})"),
                "drop it, or ask the operator to start the server with --slurm-allow-flag NAME \
                 (or CTMR_SKILL_SLURM_ALLOW_FLAGS)",
            ));
        }
        if flag.contains(['\n', '\r', '\0']) {
            return Err(ArgError::new(
                "slurm_flags",
                format!("{flag:?} holds a control character"),
                "pass one plain flag per item",
            ));
        }
    }
    Ok(flags)
}

impl SlurmOptions {
    /// The resource arguments of `sbatch` (before the array, job name and log paths).
    pub(crate) fn sbatch_args(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut opt = |flag: &str, v: Option<String>| {
            if let Some(v) = v {
                out.push(format!("--{flag}={v}"));
            }
        };
        opt("partition", self.partition.clone());
        opt(
            "gres",
            self.gpus_per_task
                .filter(|n| *n > 0)
                .map(|n| format!("gpu:{n}")),
        );
        opt("cpus-per-task", self.cpus_per_task.map(|n| n.to_string()));
        opt("mem", self.mem.clone());
        opt("time", self.time.clone());
        opt("account", self.account.clone());
        opt("qos", self.qos.clone());
        out.extend(self.flags.iter().cloned());
        out
    }

    /// `0-N` or `0-N%MAX`.
    pub(crate) fn array_spec(&self, tasks: usize) -> String {
        let last = tasks.saturating_sub(1);
        match self.max_concurrent {
            Some(max) => format!("0-{last}%{max}"),
            None => format!("0-{last}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_need_the_operator() {
        let args = SlurmArgs {
            executor: Some("slurm".into()),
            slurm_flags: Some(vec!["--wrap=rm -rf /".into()]),
            ..SlurmArgs::default()
        };
        let e = args.clone().executor(&[]).unwrap_err();
        assert_eq!(e.argument, "slurm_flags");
        let ok = SlurmArgs {
            slurm_flags: Some(vec!["--constraint=a100".into()]),
            ..args
        };
        let Executor::Slurm(o) = ok.executor(&["--constraint".into()]).unwrap() else {
            panic!("slurm expected")
        };
        assert_eq!(o.sbatch_args(), vec!["--constraint=a100".to_string()]);
    }

    #[test]
    fn values_are_plain_and_local_takes_no_slurm_arguments() {
        let bad = SlurmArgs {
            executor: Some("slurm".into()),
            slurm_partition: Some("gpu --wrap=x".into()),
            ..SlurmArgs::default()
        };
        assert_eq!(bad.executor(&[]).unwrap_err().argument, "slurm_partition");
        let local = SlurmArgs {
            slurm_mem: Some("4G".into()),
            ..SlurmArgs::default()
        };
        assert_eq!(local.executor(&[]).unwrap_err().argument, "executor");
        let full = SlurmArgs {
            executor: Some("slurm".into()),
            slurm_gpus_per_task: Some(1),
            slurm_mem: Some("16G".into()),
            slurm_time: Some("01:00:00".into()),
            slurm_max_concurrent: Some(4),
            ..SlurmArgs::default()
        };
        let Executor::Slurm(o) = full.executor(&[]).unwrap() else {
            panic!("slurm expected")
        };
        assert_eq!(
            o.sbatch_args(),
            vec!["--gres=gpu:1", "--mem=16G", "--time=01:00:00"]
        );
        assert_eq!(o.array_spec(3), "0-2%4");
        assert_eq!(o.shard_size, DEFAULT_SHARD_SIZE);
    }
}
