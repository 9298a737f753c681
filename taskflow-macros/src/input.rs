//! The function under the attribute: its model, and the checks that it can be a task.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{Attribute, FnArg, Ident, Item, ItemFn, Pat, ReturnType, Type};

/// A function that passed every check.
pub(crate) struct TaskFn {
    /// The function, with the serde attributes of its parameters removed; emitted unchanged
    /// otherwise.
    pub(crate) item: ItemFn,
    /// Its parameters, in order.
    pub(crate) args: Vec<TaskArg>,
    /// Its return type; `None` for `()`.
    pub(crate) output: Option<Type>,
}

/// One parameter: it becomes a field of the argument struct.
pub(crate) struct TaskArg {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
    /// `#[serde(...)]` attributes written on the parameter, moved to the field.
    pub(crate) serde_attrs: Vec<Attribute>,
}

/// An item the attribute cannot turn into a task: emitted as written, beside the error.
pub(crate) struct Rejected {
    pub(crate) item: TokenStream,
    pub(crate) error: syn::Error,
}

impl TaskFn {
    /// Parses the item under the attribute and checks that it can be a task.
    pub(crate) fn parse(tokens: TokenStream) -> Result<Self, Rejected> {
        let item = match syn::parse2::<Item>(tokens.clone()) {
            Ok(Item::Fn(item)) => item,
            Ok(other) => {
                return Err(Rejected {
                    item: tokens,
                    error: not_a_function(&other),
                });
            }
            Err(error) => {
                return Err(Rejected {
                    item: tokens,
                    error,
                });
            }
        };
        Self::check(item)
    }

    fn check(mut item: ItemFn) -> Result<Self, Rejected> {
        let mut errors = Errors::default();
        let sig = &item.sig;
        if let Some(constness) = &sig.constness {
            errors.push(constness, "task functions cannot be `const fn`");
        }
        if let Some(unsafety) = &sig.unsafety {
            errors.push(
                unsafety,
                "task functions cannot be `unsafe`: the runtime calls them from stored arguments",
            );
        }
        if let Some(abi) = &sig.abi {
            errors.push(abi, "task functions cannot be `extern`");
        }
        if let Some(variadic) = &sig.variadic {
            errors.push(variadic, "task functions cannot be variadic");
        }
        if !sig.generics.params.is_empty() {
            let lifetimes_only = sig
                .generics
                .params
                .iter()
                .all(|param| matches!(param, syn::GenericParam::Lifetime(_)));
            let message = if lifetimes_only {
                "task functions cannot have lifetime parameters: task arguments must be owned"
            } else {
                "task functions cannot be generic: the argument types must be known to store \
                 the task and decode it again"
            };
            errors.push(&sig.generics, message);
        }
        if let Some(where_clause) = &sig.generics.where_clause {
            errors.push(where_clause, "task functions cannot have a `where` clause");
        }

        let mut args = Vec::new();
        for input in &sig.inputs {
            match input {
                FnArg::Receiver(receiver) => errors.push(
                    receiver,
                    "task functions cannot take `self`: declare the task as a free function \
                     and pass what it needs as arguments",
                ),
                FnArg::Typed(typed) => {
                    let ident = match &*typed.pat {
                        Pat::Ident(pat)
                            if pat.by_ref.is_none()
                                && pat.subpat.is_none()
                                && pat.ident != "self" =>
                        {
                            Some(pat.ident.clone())
                        }
                        Pat::Wild(_) => {
                            errors.push(
                                &typed.pat,
                                "task arguments need a name: it becomes a field of the task's \
                                 argument struct",
                            );
                            None
                        }
                        _ => {
                            errors.push(
                                &typed.pat,
                                "task arguments must be plain identifiers, not patterns: \
                                 destructure inside the function body",
                            );
                            None
                        }
                    };
                    let type_ok = check_arg_type(&typed.ty, &mut errors);
                    if let (Some(ident), true) = (ident, type_ok) {
                        let serde_attrs = typed
                            .attrs
                            .iter()
                            .filter(|attr| attr.path().is_ident("serde"))
                            .cloned()
                            .collect();
                        args.push(TaskArg {
                            ident,
                            ty: (*typed.ty).clone(),
                            serde_attrs,
                        });
                    }
                }
            }
        }

        let output = match &sig.output {
            ReturnType::Default => None,
            ReturnType::Type(_, ty) => {
                if contains_impl_trait(ty) {
                    errors.push(
                        ty,
                        "task functions cannot return `impl Trait`: name the return type, \
                         `()` or `Result<T, E>`",
                    );
                }
                Some((**ty).clone())
            }
        };

        // Serde attributes move to the struct's fields: the function cannot keep them.
        for input in &mut item.sig.inputs {
            if let FnArg::Typed(typed) = input {
                typed.attrs.retain(|attr| !attr.path().is_ident("serde"));
            }
        }

        match errors.0 {
            Some(error) => Err(Rejected {
                item: item.into_token_stream(),
                error,
            }),
            None => Ok(Self { item, args, output }),
        }
    }
}

/// Rejects argument types that can never be stored: references and `impl Trait`.
fn check_arg_type(ty: &Type, errors: &mut Errors) -> bool {
    match ty {
        Type::Reference(reference) => {
            let hint = match &*reference.elem {
                Type::Path(path) if path.path.is_ident("str") => " such as `String`",
                Type::Slice(_) => " such as `Vec<T>`",
                _ => "",
            };
            errors.push(
                ty,
                format!(
                    "task arguments must be owned: a reference cannot be stored with the task; \
                     take an owned type{hint}"
                ),
            );
            false
        }
        Type::Group(group) => check_arg_type(&group.elem, errors),
        Type::Paren(paren) => check_arg_type(&paren.elem, errors),
        _ if contains_impl_trait(ty) => {
            errors.push(
                ty,
                "`impl Trait` arguments are not supported: the argument's exact type must be \
                 known to store the task and decode it again",
            );
            false
        }
        _ => true,
    }
}

/// Whether `impl Trait` appears anywhere in `ty`.
fn contains_impl_trait(ty: &Type) -> bool {
    fn scan(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|tree| match tree {
            proc_macro2::TokenTree::Ident(ident) => ident == "impl",
            proc_macro2::TokenTree::Group(group) => scan(group.stream()),
            _ => false,
        })
    }
    scan(ty.to_token_stream())
}

/// The error for an attribute on something other than a function.
fn not_a_function(item: &Item) -> syn::Error {
    let (what, token): (&str, &dyn ToTokens) = match item {
        Item::Struct(item) => ("a struct", &item.struct_token),
        Item::Enum(item) => ("an enum", &item.enum_token),
        Item::Union(item) => ("a union", &item.union_token),
        Item::Impl(item) => ("an impl block", &item.impl_token),
        Item::Trait(item) => ("a trait", &item.trait_token),
        Item::Mod(item) => ("a module", &item.mod_token),
        Item::Const(item) => ("a constant", &item.const_token),
        Item::Static(item) => ("a static", &item.static_token),
        Item::Type(item) => ("a type alias", &item.type_token),
        Item::Use(item) => ("a `use` item", &item.use_token),
        other => ("this item", other),
    };
    syn::Error::new_spanned(
        token,
        format!("`#[task]` applies to functions only, not to {what}"),
    )
}

/// Errors accumulated with [`syn::Error::combine`].
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        let error = syn::Error::new_spanned(tokens, message);
        match &mut self.0 {
            Some(errors) => errors.combine(error),
            None => self.0 = Some(error),
        }
    }
}
