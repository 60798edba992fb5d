//! A structural evaluator of Terraform for tests: reads a module's `.tf` files with an HCL
//! parser (hcl-rs) and evaluates the subset of the language the project's `infra/` uses,
//! with no provider, no plan and no AWS account, so that tests can check what the
//! configuration says against the code.
//!
//! ```
//! use solace_testkit::hcl::{Module, Scope, attr};
//!
//! let module = Module::parse(
//!     r#"
//! locals {
//!   functions = toset(["backup", "restore"])
//! }
//! resource "aws_sqs_queue" "work" {
//!   for_each = local.functions
//!   name     = "${var.name_prefix}${each.key}-queue"
//! }
//! "#,
//! )?;
//! let queue = module.block("resource", "aws_sqs_queue", "work").expect("declared");
//! let scope: Scope = module.instance_scope(queue, Some("backup")).expect("an instance");
//! let name = module.eval(attr(&queue.body, "name").expect("a name"), &scope);
//! assert_eq!(name.render(), "${var.name_prefix}backup-queue");
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! # What is evaluated
//! Values ([`Value`]) are what can be known without a plan: literals, lists, maps, locals,
//! `each` in `for_each` blocks, a `dynamic` block's iterator, templates, indexing, `merge`,
//! the list functions and `jsonencode` (see [`Module::eval`] for the exact list). Variables
//! and resource attributes stay references ([`Value::Ref`]); a variable's default is not
//! used, so a check holds for every setting of the variables. Both branches of a
//! conditional count as present ([`union`]). Operators, `for` expressions and other
//! functions are [`Value::Opaque`]: a check that needs them fails rather than guesses.
//!
//! # Layout
//! - [`Module`]: the blocks of one directory's `.tf` files, [`Module::eval`] and the
//!   lookups built on it (blocks, resources, `for_each` instances, locals, variables).
//! - [`Value`], [`Seg`]: evaluated values and references; [`Address`] and the reference
//!   helpers ([`address`], [`render_ref`], [`with_attr`], [`instance`]).
//! - [`iam`]: IAM statements from policy documents, `jsonencode()` policies and role
//!   policies.
//! - [`syntax`]: hcl-rs itself, whose syntax tree (`Block`, `Body`, `Expression`) the
//!   evaluator reads, for tests that edit a configuration.

pub mod iam;
mod module;
mod value;

pub use ::hcl as syntax;

pub use module::{Module, Scope, attr, labels};
pub use value::{Address, Seg, Value, address, instance, render_ref, union, with_attr};
