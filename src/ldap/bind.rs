//! LDAP binds: service accounts and users with their own password, every refusal alike for
//! names that exist and names that do not (the same answer, the same argon2 work, the same
//! budget), counted instead of logged one by one.

use super::*;

/// Who a refused bind was for, as the log and the activity log name it.
pub(super) struct Refusal<'a> {
    pub(super) provider: &'a str,
    /// Set when the name is one the provider has (an account or a user).
    pub(super) provider_id: Option<i64>,
    /// The account's name, `uid=USERNAME`, or `(unknown names)`.
    pub(super) name: &'a str,
    pub(super) dn: &'a str,
    pub(super) reason: &'static str,
}

impl<'a> Refusal<'a> {
    pub(super) fn known(
        provider: &'a str,
        provider_id: i64,
        name: &'a str,
        dn: &'a str,
    ) -> Refusal<'a> {
        Refusal {
            provider,
            provider_id: Some(provider_id),
            name,
            dn,
            reason: "",
        }
    }

    pub(super) fn unknown(provider: &'a str, dn: &'a str, reason: &'static str) -> Refusal<'a> {
        Refusal {
            provider,
            provider_id: None,
            name: "(unknown names)",
            dn,
            reason,
        }
    }

    pub(super) fn because(self, reason: &'static str) -> Refusal<'a> {
        Refusal { reason, ..self }
    }
}

impl Session {
    pub(super) async fn bind(&mut self, version: i64, dn: &str, cred: LdapBindCred) -> LdapResult {
        self.bound = None;
        let password = match self.bindable(version, dn, cred) {
            Ok(Some(password)) => password,
            // Anonymous: allowed to bind, but it reads nothing beyond the root DSE.
            Ok(None) => return done(LdapResultCode::Success, ""),
            Err(refusal) => return refusal,
        };
        // Where the DN points and what it names, in one read.
        let target = dn.to_string();
        let looked_up = self
            .state
            .store
            .run(move |c| {
                let bases = ldap_accounts::custom_bases(c)?;
                let found = match locate_bind(&target, &bases) {
                    Some(Node::Account(p, n)) => {
                        let account = ldap_accounts::for_bind(c, &p, &n)?;
                        Some((Node::Account(p, n), Named::Account(account)))
                    }
                    Some(Node::User(p, n)) => {
                        let user = ldap_accounts::user_for_bind(c, &p, &n)?;
                        Some((Node::User(p, n), Named::User(user)))
                    }
                    _ => None,
                };
                Ok((bases, found))
            })
            .await;
        let (bases, found) = match looked_up {
            Ok(b) => b,
            Err(e) => return unavailable("an LDAP bind", &e),
        };
        match found {
            Some((Node::Account(provider, name), Named::Account(account))) => {
                let base = base_for(&bases, &provider);
                self.bind_account(dn, (&provider, &name, account), &password, base)
                    .await
            }
            Some((Node::User(provider, name), Named::User(user))) => {
                let base = base_for(&bases, &provider);
                self.bind_user(dn, (&provider, &name, user), &password, base)
                    .await
            }
            _ => done(
                LdapResultCode::InvalidCredentials,
                "bind as a service account (cn=NAME,ou=services,dc=PROVIDER,dc=scimd) or as a \
                 user (uid=USERNAME,ou=people,dc=PROVIDER,dc=scimd)",
            ),
        }
    }

    /// The password of a simple LDAPv3 bind this connection may make; `None` for an anonymous
    /// bind; the refusal otherwise (another version or method, or a password in the clear off
    /// the loopback interface).
    fn bindable(
        &self,
        version: i64,
        dn: &str,
        cred: LdapBindCred,
    ) -> Result<Option<String>, LdapResult> {
        if version != 3 {
            return Err(done(
                LdapResultCode::ProtocolError,
                "only LDAP version 3 is spoken",
            ));
        }
        let LdapBindCred::Simple(password) = cred else {
            return Err(done(
                LdapResultCode::AuthMethodNotSupported,
                "only simple binds are supported",
            ));
        };
        if dn.is_empty() && password.is_empty() {
            return Ok(None);
        }
        if password.is_empty() {
            // An unauthenticated bind (a name, no password; RFC 4513 §5.1.2) is refused before
            // the name is looked up, so the answer is the same for every name.
            return Err(done(
                LdapResultCode::UnwillingToPerform,
                "a bind with a name and no password (an unauthenticated bind) is not allowed",
            ));
        }
        let config = &self.state.config;
        let allowed_in_clear = config.ldap_plaintext_loopback && is_loopback(self.peer.ip());
        if !self.tls && !allowed_in_clear {
            return Err(done(
                LdapResultCode::ConfidentialityRequired,
                "a password may not cross an unencrypted connection: use StartTLS or LDAPS \
                 (or, on the loopback interface only, set ldap_plaintext_loopback = \"on\")",
            ));
        }
        Ok(Some(password))
    }

    /// A service account's bind (`found`: the account of that name, as the bind read it).
    async fn bind_account(
        &mut self,
        dn: &str,
        (provider, name, found): (&str, &str, Option<ldap_accounts::AccountForBind>),
        password: &str,
        (base, custom): (String, bool),
    ) -> LdapResult {
        let now = chrono::Utc::now().timestamp();
        let budget = format!(
            "ldap-bind cn={},{}",
            name.to_lowercase(),
            provider.to_lowercase()
        );
        let (account, phc, fingerprint) = match found {
            Some(found) => found,
            // A service account's secret is random: refused at once, whether the name exists,
            // its account expired or the secret is wrong (its fingerprint says so), with no
            // argon2 and no budget spent, so a flood of guesses locks nobody out.
            None => return self.refused(Refusal::unknown(provider, dn, "no such account")),
        };
        let who = Refusal::known(&account.provider, account.provider_id, &account.name, dn);
        let secret = Secret::from_text(password);
        if !crate::auth::token::may_match(fingerprint.as_deref(), &account.id, &secret) {
            return self.refused(who.because("wrong password"));
        }
        if account.state(now) != crate::auth::TokenState::Active {
            return self
                .refuse(
                    who.because("the account has expired"),
                    (&budget, Secrets::Random),
                    password,
                )
                .await;
        }
        let verdict = self
            .state
            .verifier
            .verify_as(
                &format!("ldap-{}", account.id),
                &budget,
                &secret,
                &phc,
                Some(self.peer.ip()),
                Secrets::Random,
            )
            .await;
        match verdict {
            Verdict::Valid => {}
            Verdict::Throttled => return self.throttled(who),
            Verdict::Invalid => return self.refused(who.because("wrong password")),
        }
        self.state
            .counters
            .ldap(account.provider_id, &account.name, LdapEvent::Bind);
        self.note_use(&account.id, account.last_used, now).await;
        self.bound = Some(Bound {
            provider: account.provider.clone(),
            provider_id: account.provider_id,
            account: account.name.clone(),
            user: false,
            check: Check::Account(account.id.clone()),
            base,
            custom,
        });
        done(LdapResultCode::Success, "")
    }

    /// Notes that the credential `id` bound at `now`, at most once a minute (`last_used` as its
    /// row was read); a database that cannot take the write does not refuse the bind.
    async fn note_use(&self, id: &str, last_used: Option<i64>, now: i64) {
        if last_used.is_some_and(|t| now - t < 60) {
            return;
        }
        let id = id.to_string();
        let noted = self
            .state
            .store
            .write(move |c| crate::store::credentials::record_use(c, &id, now))
            .await;
        if let Err(e) = noted {
            tracing::warn!(error = %e, "recording an LDAP bind");
        }
    }

    /// A user's own bind, with the password its identity provider sent (Okta can push
    /// passwords; Entra ID never sends them, so its users cannot bind). A user that does not
    /// exist, is deactivated or has no password is refused as a wrong password is: the same
    /// answer, after the same argon2 work, within the same budget of guesses.
    pub(super) async fn bind_user(
        &mut self,
        dn: &str,
        (provider, name, found): (&str, &str, Option<ldap_accounts::BindingUser>),
        password: &str,
        (base, custom): (String, bool),
    ) -> LdapResult {
        let budget = format!(
            "ldap-bind uid={},{}",
            name.to_lowercase(),
            provider.to_lowercase()
        );
        let Some(user) = found else {
            let who = Refusal::unknown(provider, dn, "no such user");
            return self.refuse(who, (&budget, Secrets::Chosen), password).await;
        };
        if let Some((id, secret)) = crate::auth::token::parse(password) {
            return self
                .bind_app_password(dn, user, (id, secret), (base, custom))
                .await;
        }
        let key = format!("uid={}", user.user_name);
        let who = Refusal::known(&user.provider, user.provider_id, &key, dn);
        if !user.active {
            return self
                .refuse(
                    who.because("the user is deactivated"),
                    (&budget, Secrets::Chosen),
                    password,
                )
                .await;
        }
        let Some(phc) = user.password_hash else {
            let why = "no password was provisioned (Entra ID never sends passwords)";
            return self
                .refuse(who.because(why), (&budget, Secrets::Chosen), password)
                .await;
        };
        let verdict = self
            .state
            .verifier
            .verify_as(
                &format!("user-{}", user.seq),
                &budget,
                &Secret::from_text(password),
                &phc,
                Some(self.peer.ip()),
                Secrets::Chosen,
            )
            .await;
        match verdict {
            Verdict::Valid => {
                self.state
                    .counters
                    .ldap(user.provider_id, &key, LdapEvent::Bind);
                self.bound = Some(Bound {
                    provider: user.provider,
                    provider_id: user.provider_id,
                    account: user.user_name,
                    user: true,
                    check: Check::User {
                        seq: user.seq,
                        password_hash: phc,
                    },
                    base,
                    custom,
                });
                done(LdapResultCode::Success, "")
            }
            Verdict::Throttled => self.throttled(who),
            Verdict::Invalid => self.refused(who.because("wrong password")),
        }
    }

    /// A user's bind with one of their application passwords (`scimd_<id>_<secret>`, made on
    /// the console's /me page). Its secret is random: one that its fingerprint rules out, or
    /// that is not this user's, revoked or expired, is refused at once, with no argon2 and no
    /// budget spent; the right one costs one argon2 verification (then remembered).
    async fn bind_app_password(
        &mut self,
        dn: &str,
        user: ldap_accounts::BindingUser,
        (id, secret): (&str, Secret),
        (base, custom): (String, bool),
    ) -> LdapResult {
        let key = format!("uid={}", user.user_name);
        let who = Refusal::known(&user.provider, user.provider_id, &key, dn);
        let wanted = id.to_string();
        let found = self
            .state
            .store
            .run(move |c| crate::store::sign_in::app_password_for_bind(c, &wanted))
            .await;
        let (k, phc, fingerprint) = match found {
            Ok(Some(found)) => found,
            Ok(None) => return self.refused(who.because("no such application password")),
            Err(e) => return unavailable("an LDAP bind", &e),
        };
        let now = chrono::Utc::now().timestamp();
        if k.owner.as_deref() != Some(user.id.as_str()) || k.provider_id != user.provider_id {
            return self.refused(who.because("another user's application password"));
        }
        if !crate::auth::token::may_match(fingerprint.as_deref(), &k.id, &secret) {
            return self.refused(who.because("wrong application password"));
        }
        if !user.active {
            return self.refused(who.because("the user is deactivated"));
        }
        if k.state(now) != crate::auth::TokenState::Active {
            return self.refused(who.because("the application password is revoked or expired"));
        }
        let budget = format!("ldap-bind app {}", k.id);
        let verdict = self
            .state
            .verifier
            .verify_as(
                &format!("app-{}", k.id),
                &budget,
                &secret,
                &phc,
                Some(self.peer.ip()),
                Secrets::Random,
            )
            .await;
        match verdict {
            Verdict::Valid => {}
            Verdict::Throttled => return self.throttled(who),
            Verdict::Invalid => return self.refused(who.because("wrong application password")),
        }
        self.state
            .counters
            .ldap(user.provider_id, &key, LdapEvent::Bind);
        self.note_use(&k.id, k.last_used, now).await;
        self.bound = Some(Bound {
            provider: user.provider,
            provider_id: user.provider_id,
            account: user.user_name,
            user: true,
            check: Check::AppPassword {
                seq: user.seq,
                id: k.id,
            },
            base,
            custom,
        });
        done(LdapResultCode::Success, "")
    }

    /// Refuses a bind where there is no password to check (no such name, no password, the
    /// account expired or the user deactivated) exactly as a wrong password is refused: the
    /// password is checked against a throwaway hash, spending the same budget of guesses, so
    /// neither the answer, nor the throttling, nor the time tells these cases apart.
    pub(super) async fn refuse(
        &self,
        who: Refusal<'_>,
        (budget, secrets): (&str, Secrets),
        password: &str,
    ) -> LdapResult {
        let verdict = match self.state.verifier.dummy_hash().await {
            Some(phc) => {
                self.state
                    .verifier
                    .verify_as(
                        budget,
                        budget,
                        &Secret::from_text(password),
                        &phc,
                        Some(self.peer.ip()),
                        secrets,
                    )
                    .await
            }
            None => Verdict::Invalid,
        };
        match verdict {
            Verdict::Throttled => self.throttled(who),
            _ => self.refused(who),
        }
    }

    /// The answer to every refused bind, counted (see `refusals`).
    pub(super) fn refused(&self, who: Refusal<'_>) -> LdapResult {
        if let Some(id) = who.provider_id {
            self.state
                .counters
                .ldap(id, who.name, LdapEvent::FailedBind);
        }
        self.state.counters.bind_refusal(
            who.provider,
            who.name,
            who.dn,
            self.peer.ip(),
            who.reason,
        );
        done(LdapResultCode::InvalidCredentials, "invalid credentials")
    }

    /// The answer once a name or an address has had too many new passwords checked lately,
    /// whether the name exists or not.
    pub(super) fn throttled(&self, who: Refusal<'_>) -> LdapResult {
        self.state.counters.bind_refusal(
            who.provider,
            who.name,
            who.dn,
            self.peer.ip(),
            "too many binds with new passwords (throttled)",
        );
        done(
            LdapResultCode::Busy,
            "too many failed binds for this name or from this address: try again shortly",
        )
    }
}

/// What a bind DN names, as the bind's read found it.
enum Named {
    Account(Option<ldap_accounts::AccountForBind>),
    User(Option<ldap_accounts::BindingUser>),
}

/// Where a bind DN points, in the trees of providers that chose their own base (`bases`:
/// provider, base DN) or in the default ones.
fn locate_bind(dn: &str, bases: &[(String, String)]) -> Option<Node> {
    bases
        .iter()
        .find_map(|(p, b)| directory::locate_under(dn, p, b))
        .or_else(|| {
            // The default tree of a provider that chose its own base is not its tree.
            directory::locate(dn).filter(|n| match n {
                Node::Account(p, _) | Node::User(p, _) => {
                    !bases.iter().any(|(q, _)| q.eq_ignore_ascii_case(p))
                }
                _ => true,
            })
        })
}

/// A provider's base DN, and whether it is its own choice.
fn base_for(bases: &[(String, String)], provider: &str) -> (String, bool) {
    match bases.iter().find(|(q, _)| q.eq_ignore_ascii_case(provider)) {
        Some((_, b)) => (b.clone(), true),
        None => (directory::base_dn(provider), false),
    }
}
