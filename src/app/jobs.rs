//! Background jobs (prune, sync, bundle…) report `Started / Progress / Done / Failed` through
//! the app channel; the state keeps the newest report of each.

use std::time::SystemTime;

/// A report from a background job.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEvent {
    Started { id: u64, name: String },
    Progress { id: u64, done: u64, total: u64, text: String },
    Done { id: u64, summary: String },
    Failed { id: u64, error: String },
}

/// What a job is doing now.
#[derive(Debug, Clone, PartialEq)]
pub enum JobStatus {
    Running { done: u64, total: u64, text: String },
    Done(String),
    Failed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobInfo {
    pub id: u64,
    pub name: String,
    pub status: JobStatus,
    pub updated: SystemTime,
}

/// Every job this session has run, newest last.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Jobs {
    pub list: Vec<JobInfo>,
}

impl Jobs {
    pub fn apply(&mut self, ev: JobEvent, now: SystemTime) {
        let id = match &ev {
            JobEvent::Started { id, .. }
            | JobEvent::Progress { id, .. }
            | JobEvent::Done { id, .. }
            | JobEvent::Failed { id, .. } => *id,
        };
        let status = match &ev {
            JobEvent::Started { .. } => JobStatus::Running { done: 0, total: 0, text: String::new() },
            JobEvent::Progress { done, total, text, .. } => {
                JobStatus::Running { done: *done, total: *total, text: text.clone() }
            }
            JobEvent::Done { summary, .. } => JobStatus::Done(summary.clone()),
            JobEvent::Failed { error, .. } => JobStatus::Failed(error.clone()),
        };
        match self.list.iter_mut().find(|j| j.id == id) {
            Some(job) => {
                job.status = status;
                job.updated = now;
            }
            None => {
                let name = match ev {
                    JobEvent::Started { name, .. } => name,
                    _ => format!("job {id}"),
                };
                self.list.push(JobInfo { id, name, status, updated: now });
            }
        }
        // Keep the history short: finished jobs beyond the newest 20 are forgotten.
        while self.list.len() > 20 {
            match self.list.iter().position(|j| !matches!(j.status, JobStatus::Running { .. })) {
                Some(i) => {
                    self.list.remove(i);
                }
                None => break,
            }
        }
    }

    pub fn running(&self) -> impl Iterator<Item = &JobInfo> {
        self.list.iter().filter(|j| matches!(j.status, JobStatus::Running { .. }))
    }

    /// The job reported most recently.
    pub fn latest(&self) -> Option<&JobInfo> {
        self.list.iter().max_by_key(|j| j.updated)
    }
}
