//! Code generation: the argument struct, its `Task` impl, the registration and the checks.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Ident, Type};

use crate::args::{TaskArgs, Wait};
use crate::input::{Rejected, TaskFn};

/// Expands the attribute: the function unchanged, plus the generated items and every error.
pub(crate) fn task(args: TaskArgs, input: Result<TaskFn, Rejected>) -> TokenStream {
    match input {
        Ok(function) => {
            let expanded = expand(&args, &function);
            let errors = args.errors.map(|e| e.into_compile_error());
            quote!(#expanded #errors)
        }
        Err(Rejected { item, mut error }) => {
            if let Some(option_errors) = args.errors {
                error.combine(option_errors);
            }
            let errors = error.into_compile_error();
            quote!(#item #errors)
        }
    }
}

fn expand(args: &TaskArgs, function: &TaskFn) -> TokenStream {
    let krate = args.krate();
    let item = &function.item;
    let vis = &item.vis;
    let fn_ident = &item.sig.ident;
    let fn_name = fn_ident.unraw().to_string();
    let struct_ident = args
        .args
        .clone()
        .unwrap_or_else(|| Ident::new(&pascal_case(&fn_name), fn_ident.span()));

    let cfgs: Vec<_> = item
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("cfg"))
        .collect();
    let fn_docs: Vec<_> = item
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc"))
        .collect();
    let summary = format!("Arguments of the task [`{fn_name}`].");
    let doc_separator = (!fn_docs.is_empty()).then(|| quote!(#[doc = ""]));

    let serde_path = format!("{}::__private::serde", compact(&krate));
    let fields = function.args.iter().map(|arg| {
        let ident = &arg.ident;
        let ty = &arg.ty;
        let attrs = &arg.serde_attrs;
        let doc = format!("Argument `{}` of [`{fn_name}`].", ident.unraw());
        quote! {
            #[doc = #doc]
            #(#attrs)*
            #vis #ident: #ty
        }
    });

    let name = args
        .name
        .as_ref()
        .map_or_else(|| fn_name.clone(), syn::LitStr::value);
    let options = options(args, &krate);

    let arg_checks = function.args.iter().map(|arg| {
        let check = spanned_path(&arg.ty, quote!(#krate::__private::assert_task_arg));
        let ty = &arg.ty;
        let close = close_generic(&arg.ty);
        quote!(const _: () = #check::<#ty #close;)
    });
    let fields_idents: Vec<_> = function.args.iter().map(|arg| &arg.ident).collect();
    let bindings: Vec<_> = (0..function.args.len())
        .map(|i| format_ident!("__taskflow_arg_{}", i))
        .collect();
    let fn_span = fn_ident.span();
    // The `Send` check points at the function's name, the return type check at the return type.
    let (ret_first, ret_last) = function
        .output
        .as_ref()
        .map_or((fn_span, fn_span), first_last);
    let task_run = respan(quote!(#krate::__private::TaskRun::), ret_first);
    let blocking = item.sig.asyncness.is_none();
    let run = if !blocking {
        let call = quote!(#krate::__private::assert_send_future(#fn_ident(#(#bindings),*)));
        // Unboxed: `from_future` boxes the attempt's future once.
        let boxed = respan(quote!(let __taskflow_future = #call;), fn_span);
        // `identity(..)` only stretches the argument over the whole return type, where a
        // failed `IntoTaskResult` bound on the output is reported.
        let from = respan(quote!(from_future), ret_last);
        let identity = respan(quote!(::core::convert::identity), ret_first);
        let argument = respan(quote!((__taskflow_future)), ret_last);
        quote!(#boxed #task_run #from(#identity #argument))
    } else {
        let call = respan(quote!(#fn_ident(#(#bindings),*)), fn_span);
        let from = respan(quote!(from_blocking(move || #call)), ret_last);
        quote!(#task_run #from)
    };
    let line = quote_spanned!(fn_span=> ::core::line!());

    // The checks come first so that, when an argument cannot be stored, their error is the first
    // one shown, before the errors of the serde derives on the same field.
    quote! {
        #item

        #(#cfgs)*
        const _: () = {
            #(#arg_checks)*

            impl #krate::__private::Task for #struct_ident {
                const NAME: &'static str = #name;
                const OPTIONS: #krate::__private::TaskOptions = #options;
                const BLOCKING: bool = #blocking;

                fn run(self) -> #krate::__private::TaskRun {
                    let Self { #(#fields_idents: #bindings),* } = self;
                    #run
                }
            }

            #krate::__private::inventory::submit! {
                #krate::__private::Registration::of::<#struct_ident>(
                    ::core::module_path!(),
                    ::core::file!(),
                    #line,
                )
            }
        };

        #(#cfgs)*
        #[doc = #summary]
        #doc_separator
        #(#fn_docs)*
        #[derive(
            ::core::fmt::Debug,
            ::core::clone::Clone,
            #krate::__private::serde::Serialize,
            #krate::__private::serde::Deserialize,
        )]
        #[serde(crate = #serde_path)]
        #vis struct #struct_ident {
            #(#fields,)*
        }
    }
}

/// `TaskOptions::new().retries(3)...` with the options that were given.
fn options(args: &TaskArgs, krate: &TokenStream) -> TokenStream {
    let duration = |wait: Wait| {
        let Wait { secs, nanos } = wait;
        quote!(#krate::__private::Duration::new(#secs, #nanos))
    };
    let mut chain = quote!(#krate::__private::TaskOptions::new());
    if let Some(retries) = args.retries {
        chain.extend(quote!(.retries(#retries)));
    }
    if let Some(delay) = args.delay {
        let delay = duration(delay);
        chain.extend(quote!(.delay(#delay)));
    }
    if let Some(backoff) = args.backoff {
        let backoff = proc_macro2::Literal::f64_suffixed(backoff);
        chain.extend(quote!(.backoff(#backoff)));
    }
    if let Some(max_delay) = args.max_delay {
        let max_delay = duration(max_delay);
        chain.extend(quote!(.max_delay(#max_delay)));
    }
    if let Some(jitter) = args.jitter {
        chain.extend(quote!(.jitter(#jitter)));
    }
    if let Some(timeout) = args.timeout {
        let timeout = duration(timeout);
        chain.extend(quote!(.timeout(#timeout)));
    }
    if let Some(persist) = args.persist {
        chain.extend(quote!(.persist(#persist)));
    }
    if let Some(requeue) = args.requeue_on_interrupt {
        chain.extend(quote!(.requeue_on_interrupt(#requeue)));
    }
    if let Some(queue) = &args.queue {
        chain.extend(quote!(.queue(#queue)));
    }
    if let Some(priority) = args.priority {
        chain.extend(quote!(.priority(#priority)));
    }
    chain
}

/// `path` with every token placed at the first token of `ty`, so a failed bound on the call
/// underlines the user's type.
fn spanned_path(ty: &Type, path: TokenStream) -> TokenStream {
    respan(path, ty.span())
}

/// The `>()` closing a check, placed at the last token of `ty`.
fn close_generic(ty: &Type) -> TokenStream {
    let (_, last) = first_last(ty);
    quote_spanned!(last=> >())
}

/// The spans of the first and the last token of `tokens`.
fn first_last(tokens: &impl ToTokens) -> (Span, Span) {
    let mut trees = tokens.to_token_stream().into_iter();
    let first = trees
        .next()
        .map_or_else(Span::call_site, |tree| tree.span());
    let last = trees.last().map_or(first, |tree| tree.span());
    (first, last)
}

/// `tokens` placed at `span` (keeping call-site name resolution).
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    let span = Span::call_site().located_at(span);
    tokens
        .into_iter()
        .map(|mut tree| {
            if let TokenTree::Group(group) = &tree {
                let mut new =
                    proc_macro2::Group::new(group.delimiter(), respan(group.stream(), span));
                new.set_span(span);
                tree = TokenTree::Group(new);
            } else {
                tree.set_span(span);
            }
            tree
        })
        .collect()
}

/// A path written without spaces: `::taskflow`.
fn compact(tokens: &TokenStream) -> String {
    tokens.to_string().replace(' ', "")
}

/// `send_welcome` → `SendWelcome`.
fn pascal_case(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    for word in snake.split('_').filter(|word| !word.is_empty()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    if out.is_empty() {
        out.push_str("Task");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{pascal_case, task};
    use crate::args::TaskArgs;
    use crate::input::TaskFn;
    use quote::quote;

    #[test]
    fn crate_option_replaces_every_path() {
        let args = TaskArgs::parse(quote!(crate = "::tf", retries = 1));
        let function = TaskFn::parse(quote! {
            async fn send(to: String) -> Result<(), String> { let _ = to; Ok(()) }
        });
        let out = task(args, function).to_string();
        assert!(!out.contains(":: taskflow"), "{out}");
        assert!(out.contains(":: tf :: __private :: Task for Send"), "{out}");
        assert!(out.contains("\"::tf::__private::serde\""), "{out}");
    }

    #[test]
    fn pascal() {
        assert_eq!(pascal_case("send_welcome"), "SendWelcome");
        assert_eq!(pascal_case("_private_task"), "PrivateTask");
        assert_eq!(pascal_case("render2_pdf"), "Render2Pdf");
        assert_eq!(pascal_case("already"), "Already");
    }
}
