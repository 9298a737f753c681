//! The task registry: every declared task by name, so a stored task can be run from its name and
//! its JSON arguments alone.
//!
//! `#[taskflow::task]` submits a [`Registration`] through `inventory`; [`Registry::collect`]
//! gathers them once when the manager is built. Platforms or tests that do without `inventory`
//! register types by hand with [`TaskManagerBuilder::register`](crate::TaskManagerBuilder::register).

use std::collections::HashMap;
use std::fmt;

use crate::error::{Error, Result};
use crate::json_text::JsonText;
use crate::task::{Task, TaskOptions, TaskRun};

/// A declared task: its name, options, where it was declared, and how to run it from JSON.
///
/// # Examples
///
/// ```
/// use taskflow::{Registration, Task, TaskOptions, TaskRun};
///
/// #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
/// struct Double { n: u64 }
/// impl Task for Double {
///     const NAME: &'static str = "double";
///     const OPTIONS: TaskOptions = TaskOptions::new();
///     const BLOCKING: bool = true;
///     fn run(self) -> TaskRun { TaskRun::from_blocking(move || Ok::<_, String>(self.n * 2)) }
/// }
///
/// let reg = Registration::of::<Double>(module_path!(), file!(), line!());
/// assert_eq!(reg.name(), "double");
/// let run = reg.decode(&serde_json::json!({ "n": 21 }).into()).unwrap();
/// match run {
///     TaskRun::Blocking(f) => assert_eq!(f().unwrap().decode::<u64>().unwrap(), 42),
///     TaskRun::Async(_) => unreachable!(),
/// }
/// ```
#[derive(Clone, Copy)]
pub struct Registration {
    name: &'static str,
    options: &'static TaskOptions,
    module_path: &'static str,
    file: &'static str,
    line: u32,
    type_name: fn() -> &'static str,
    decode: Decoder,
}

/// Decodes stored JSON arguments and prepares one attempt.
pub(crate) type Decoder = fn(&JsonText) -> std::result::Result<TaskRun, serde_json::Error>;

inventory::collect!(Registration);

fn decode_and_run<T: Task>(args: &JsonText) -> std::result::Result<TaskRun, serde_json::Error> {
    args.decode::<T>().map(T::run)
}

impl Registration {
    /// The registration of task type `T`, declared at `module_path`, `file`, `line`.
    ///
    /// # Examples
    ///
    /// See [`Registration`].
    pub const fn of<T: Task>(module_path: &'static str, file: &'static str, line: u32) -> Self {
        Self {
            name: T::NAME,
            options: &T::OPTIONS,
            module_path,
            file,
            line,
            type_name: std::any::type_name::<T>,
            decode: decode_and_run::<T>,
        }
    }

    /// The task's stable name.
    ///
    /// # Examples
    ///
    /// See [`Registration`].
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The task's options: its declaration's, which every run of the task shares.
    ///
    /// # Examples
    ///
    /// See [`Registration`].
    pub fn options(&self) -> &'static TaskOptions {
        self.options
    }

    /// The module that declared the task.
    ///
    /// # Examples
    ///
    /// See [`Registration`].
    pub fn module_path(&self) -> &'static str {
        self.module_path
    }

    /// The source file and line of the declaration.
    ///
    /// # Examples
    ///
    /// See [`Registration`].
    pub fn location(&self) -> (&'static str, u32) {
        (self.file, self.line)
    }

    /// Decodes stored JSON arguments and prepares one attempt.
    ///
    /// # Errors
    ///
    /// When the payload does not decode into the task's arguments.
    ///
    /// # Examples
    ///
    /// See [`Registration`].
    pub fn decode(&self, args: &JsonText) -> std::result::Result<TaskRun, serde_json::Error> {
        (self.decode)(args)
    }

    /// The function behind [`Registration::decode`].
    pub(crate) fn decoder(&self) -> Decoder {
        self.decode
    }

    /// Whether two registrations are the same task type (registered through inventory and by
    /// hand, say), rather than two declarations sharing a name.
    fn same_declaration(&self, other: &Self) -> bool {
        self.name == other.name && (self.type_name)() == (other.type_name)()
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("name", &self.name)
            .field("options", &self.options)
            .field("module_path", &self.module_path)
            .field("file", &self.file)
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

/// Every registered task, by name. Built once when the manager is built.
///
/// # Examples
///
/// ```
/// let registry = taskflow::Registry::collect(Vec::new()).unwrap();
/// assert!(registry.get("no-such-task").is_none());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Registry {
    by_name: HashMap<&'static str, Registration>,
}

impl Registry {
    /// Gathers the `inventory` registrations plus `extra`, rejecting duplicate names.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateTask`] when two different declarations share a name.
    ///
    /// # Examples
    ///
    /// See [`Registry`].
    pub fn collect(extra: Vec<Registration>) -> Result<Self> {
        Self::from_registrations(
            inventory::iter::<Registration>
                .into_iter()
                .copied()
                .chain(extra),
        )
    }

    /// Builds a registry from these registrations only, without `inventory`.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateTask`] when two different declarations share a name.
    ///
    /// # Examples
    ///
    /// ```
    /// let registry = taskflow::Registry::from_registrations([]).unwrap();
    /// assert_eq!(registry.names().count(), 0);
    /// ```
    pub fn from_registrations(
        registrations: impl IntoIterator<Item = Registration>,
    ) -> Result<Self> {
        let mut by_name: HashMap<&'static str, Registration> = HashMap::new();
        for registration in registrations {
            if let Some(existing) = by_name.get(registration.name) {
                if existing.same_declaration(&registration) {
                    continue;
                }
                return Err(Error::DuplicateTask {
                    name: registration.name.to_owned(),
                    first: format!(
                        "{} ({}:{})",
                        existing.module_path, existing.file, existing.line
                    ),
                    second: format!(
                        "{} ({}:{})",
                        registration.module_path, registration.file, registration.line
                    ),
                });
            }
            by_name.insert(registration.name, registration);
        }
        Ok(Self { by_name })
    }

    /// The registration of `name`.
    ///
    /// # Examples
    ///
    /// See [`Registry`].
    pub fn get(&self, name: &str) -> Option<&Registration> {
        self.by_name.get(name)
    }

    /// The registered names, sorted.
    ///
    /// # Examples
    ///
    /// ```
    /// let registry = taskflow::Registry::default();
    /// assert!(registry.names().next().is_none());
    /// ```
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        let mut names: Vec<_> = self.by_name.keys().copied().collect();
        names.sort_unstable();
        names.into_iter()
    }

    /// Every registration, sorted by name.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(taskflow::Registry::default().registrations().len(), 0);
    /// ```
    pub fn registrations(&self) -> Vec<&Registration> {
        let mut all: Vec<_> = self.by_name.values().collect();
        all.sort_unstable_by_key(|r| r.name);
        all
    }

    /// The error for a name that is not registered, listing the registered ones.
    pub(crate) fn unknown(&self, name: &str) -> Error {
        Error::UnknownTask {
            name: name.to_owned(),
            registered: self.names().collect::<Vec<_>>().join(", "),
        }
    }
}
