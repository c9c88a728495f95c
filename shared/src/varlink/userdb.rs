//! `io.systemd.UserDatabase` (homed-spec §6.3) as a client sees it.

use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};

use super::client::{Client, DEFAULT_TIMEOUT, Reply, VarlinkError};
use crate::record::{MachineContext, RecordOrigin, UserRecord};

/// Where homed (ours and systemd's) serves its users.
pub const HOME_SOCKET: &str = "/run/systemd/userdb/io.systemd.Home";

const INTERFACE: &str = "io.systemd.UserDatabase";
const NO_RECORD_FOUND: &str = "io.systemd.UserDatabase.NoRecordFound";
const ENUMERATION_NOT_SUPPORTED: &str = "io.systemd.UserDatabase.EnumerationNotSupported";

/// A user record as a service returned it.
#[derive(Debug, Clone)]
pub struct UserReply {
    pub record: UserRecord,
    /// The privileged section was withheld from this caller.
    pub incomplete: bool,
}

/// A group record as a service returned it, reduced to what NSS needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupReply {
    pub name: String,
    pub gid: u32,
    /// The record's own `members` (memberships come separately).
    pub members: Vec<String>,
}

impl GroupReply {
    /// Reads `groupName` and the effective `gid` (binding over perMachine over top level) and
    /// `members` of a group record. `None` if it has no valid name or GID on this machine.
    pub fn from_record(record: &Map<String, Value>, machine: &MachineContext) -> Option<Self> {
        let name = record.get("groupName")?.as_str()?;
        if !crate::record::names::is_valid_relaxed(name) {
            return None;
        }
        let binding = record
            .get("binding")
            .and_then(|b| b.get(&machine.machine_id))
            .and_then(Value::as_object);
        let gid = binding
            .and_then(|b| b.get("gid"))
            .or_else(|| record.get("gid"))
            .and_then(Value::as_u64)
            .and_then(|g| u32::try_from(g).ok())
            .filter(|&g| g != u32::MAX && g != 65535)?;
        let members = record
            .get("members")
            .and_then(Value::as_array)
            .map(|m| {
                m.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Some(GroupReply {
            name: name.to_owned(),
            gid,
            members,
        })
    }
}

/// One user's membership in one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub user_name: String,
    pub group_name: String,
}

/// A connection to one `io.systemd.UserDatabase` service.
pub struct UserDatabase {
    client: Client,
    service: String,
}

fn is_absent(e: &VarlinkError) -> bool {
    matches!(e, VarlinkError::Remote { name, .. } if name == NO_RECORD_FOUND || name == ENUMERATION_NOT_SUPPORTED)
}

fn user_reply(reply: Reply) -> Result<UserReply, VarlinkError> {
    let mut parameters = reply.parameters;
    let record = parameters
        .remove("record")
        .ok_or_else(|| VarlinkError::Protocol("reply without a record".into()))?;
    let record = UserRecord::from_value(record, RecordOrigin::Host)
        .map_err(|e| VarlinkError::Protocol(e.to_string()))?;
    let incomplete = parameters
        .get("incomplete")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(UserReply { record, incomplete })
}

impl UserDatabase {
    /// Connects to the service socket at `path`; the service name is the socket's file name.
    pub fn connect(path: &Path) -> Result<Self, VarlinkError> {
        Self::connect_with_timeout(path, DEFAULT_TIMEOUT)
    }

    pub fn connect_with_timeout(path: &Path, timeout: Duration) -> Result<Self, VarlinkError> {
        let service = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        Ok(UserDatabase {
            client: Client::connect_with_timeout(path, timeout)?,
            service,
        })
    }

    fn parameters(&self, key: Option<(&str, Value)>) -> Map<String, Value> {
        let mut p = Map::new();
        if let Some((k, v)) = key {
            p.insert(k.into(), v);
        }
        p.insert("service".into(), Value::String(self.service.clone()));
        p
    }

    fn one_user(&mut self, key: (&str, Value)) -> Result<Option<UserReply>, VarlinkError> {
        let parameters = self.parameters(Some(key));
        match self
            .client
            .call(&format!("{INTERFACE}.GetUserRecord"), parameters)
        {
            Ok(reply) => user_reply(reply).map(Some),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn user_by_name(&mut self, name: &str) -> Result<Option<UserReply>, VarlinkError> {
        self.one_user(("userName", Value::String(name.into())))
    }

    pub fn user_by_uid(&mut self, uid: u32) -> Result<Option<UserReply>, VarlinkError> {
        self.one_user(("uid", Value::from(uid)))
    }

    /// Every user the service knows. Records that fail to load are skipped.
    pub fn all_users(&mut self) -> Result<Vec<UserReply>, VarlinkError> {
        let mut users = Vec::new();
        let parameters = self.parameters(None);
        match self
            .client
            .call_more(&format!("{INTERFACE}.GetUserRecord"), parameters, |reply| {
                if let Ok(user) = user_reply(reply) {
                    users.push(user);
                }
            }) {
            Ok(()) => Ok(users),
            Err(e) if is_absent(&e) => Ok(users),
            Err(e) => Err(e),
        }
    }

    fn one_group(
        &mut self,
        key: (&str, Value),
        machine: &MachineContext,
    ) -> Result<Option<GroupReply>, VarlinkError> {
        let parameters = self.parameters(Some(key));
        match self
            .client
            .call(&format!("{INTERFACE}.GetGroupRecord"), parameters)
        {
            Ok(reply) => Ok(reply
                .parameters
                .get("record")
                .and_then(Value::as_object)
                .and_then(|r| GroupReply::from_record(r, machine))),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn group_by_name(
        &mut self,
        name: &str,
        machine: &MachineContext,
    ) -> Result<Option<GroupReply>, VarlinkError> {
        self.one_group(("groupName", Value::String(name.into())), machine)
    }

    pub fn group_by_gid(
        &mut self,
        gid: u32,
        machine: &MachineContext,
    ) -> Result<Option<GroupReply>, VarlinkError> {
        self.one_group(("gid", Value::from(gid)), machine)
    }

    /// Every group the service knows.
    pub fn all_groups(
        &mut self,
        machine: &MachineContext,
    ) -> Result<Vec<GroupReply>, VarlinkError> {
        let mut groups = Vec::new();
        let parameters = self.parameters(None);
        match self.client.call_more(
            &format!("{INTERFACE}.GetGroupRecord"),
            parameters,
            |reply| {
                if let Some(g) = reply
                    .parameters
                    .get("record")
                    .and_then(Value::as_object)
                    .and_then(|r| GroupReply::from_record(r, machine))
                {
                    groups.push(g);
                }
            },
        ) {
            Ok(()) => Ok(groups),
            Err(e) if is_absent(&e) => Ok(groups),
            Err(e) => Err(e),
        }
    }

    /// Memberships, filtered by user, by group, by both or (with neither) all of them.
    pub fn memberships(
        &mut self,
        user_name: Option<&str>,
        group_name: Option<&str>,
    ) -> Result<Vec<Membership>, VarlinkError> {
        let mut parameters = self.parameters(None);
        if let Some(u) = user_name {
            parameters.insert("userName".into(), Value::String(u.into()));
        }
        if let Some(g) = group_name {
            parameters.insert("groupName".into(), Value::String(g.into()));
        }
        let mut found = Vec::new();
        match self.client.call_more(
            &format!("{INTERFACE}.GetMemberships"),
            parameters,
            |reply| {
                let get = |k: &str| reply.parameters.get(k).and_then(Value::as_str);
                if let (Some(u), Some(g)) = (get("userName"), get("groupName")) {
                    found.push(Membership {
                        user_name: u.to_owned(),
                        group_name: g.to_owned(),
                    });
                }
            },
        ) {
            Ok(()) => Ok(found),
            Err(e) if is_absent(&e) => Ok(found),
            Err(e) => Err(e),
        }
    }
}
