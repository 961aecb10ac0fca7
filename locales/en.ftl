# Gatehouse's pages in English. Each message has the same key in de.ftl (a unit test checks).
# Arguments: { $email }, { $seconds }, { $tenant }.

## The layout
layout-skip = Skip to the content
layout-language = Language

## Shared words
continue = Continue
sign-out = Sign out
back-to-sign-in = Back to sign in
field-email = Email
field-password = Password
field-code = Authentication code
field-new-password = New password (8 to 128 characters)
failed-title = Something went wrong
failed-text = Something went wrong on our side. Please try again in a moment.
csrf-expired-title = Please try again
csrf-expired = This form has expired or was opened in another browser. Nothing was changed.
csrf-start-again = Start again
too-many-title = Too many attempts
too-many = Too many attempts from your network. Try again in { $seconds } seconds.

## Sign-in
login-title = Sign in
login-signed-out = You are signed out.
login-continue = Continue
login-password-title = Enter your password
# Followed by the email, in bold.
login-signing-in-as = Signing in as
login-not-you = not you?
login-sign-in = Sign in
login-forgot = Forgot password?
login-totp-title = Two-step verification
login-code-help = The 6-digit code of your authenticator app, or one of your recovery codes.
login-verify = Verify
login-enrol-title = Set up two-step verification
login-enrol-intro = Your role requires two-step verification. Scan this code with an authenticator app, or type the key below into it, then enter the 6-digit code it shows.
login-enrol-key = Key:
login-enrol-qr = QR code of the key for your authenticator app
login-confirm = Confirm
login-recovery-title = Save your recovery codes
login-recovery-intro = Two-step verification is on. Keep these recovery codes somewhere safe: each signs you in once if you lose your authenticator. They are shown only now.
login-signed-in-title = Signed in
login-sso-title = Continuing to your organisation's sign-in
problem-email-invalid = Enter your email address, such as name@example.com.
problem-sign-in-expired = Your sign-in has expired; please start again.
problem-wrong-password = The email or password is wrong.
problem-wrong-code = That code is wrong or was already used.
problem-wrong-enrol-code = That code is wrong. Scan this new code and try again.
problem-locked = Too many failed attempts. Try again in { $seconds } seconds.
problem-account-disabled = This account is disabled; ask an administrator of your organisation.
problem-tenant-suspended = Your organisation's access is suspended; contact its owner or the platform's support.
problem-sso-required = Your organisation signs you in through its own identity provider: continue from the login page.

## The account page
account-title = Your account
# Followed by the email, in bold.
account-signed-in-as = Signed in as
account-organisation = Organisation
account-role = Role
account-console = Administer your organisation

## Mailed links
forgot-title = Forgot your password?
forgot-intro = Type the email you sign in with; we mail you a link to choose a new password.
forgot-send = Send the link
forgot-sent-title = Check your mail
forgot-sent = If { $email } has an account, a link to choose a new password is on its way. It works once.
invitation-title = Accept your invitation
invitation-button = Set password and accept
reset-title = Choose a new password
reset-button = Set new password
link-damaged = The link is damaged; open it from the mail again.
link-unreadable = The form could not be read; open the link from the mail again.
link-done-title = Password set
link-done = Your password is set. You can now sign in as { $email }.
link-invalid-title = Link not valid

## Gatehouse as the OpenID provider of applications
oidc-damaged-title = The sign-in request is damaged
oidc-damaged = Go back to the application and try again.
oidc-unknown-app-title = Unknown application
oidc-unknown-app = The application that sent you here is not registered with Gatehouse. Contact its developers.
oidc-link-invalid-title = This sign-in link is not valid
oidc-unregistered-return = The application asked to return to an address it has not registered. Contact its developers.
oidc-bad-address = The application's address is not valid.
oidc-logout-invalid-title = This sign-out link is not valid
oidc-logout-other-app = The application named in it did not sign you in.
oidc-logout-unregistered = The application asked to return to an address it has not registered.
logout-title = Sign out
logout-question = Do you want to sign out of Gatehouse and the applications you signed in to with it?
signed-out-title = Signed out

## Sign-in through an organisation's own identity provider
sso-tested-title = Test sign-in succeeded
sso-tested = The identity provider of { $tenant } signed in { $email } with a verified email in one of its domains. Nothing was changed: activate the provider to use it.
sso-failed-title = Sign-in not completed

## The consoles
console-nav = Console
console-users = Users
console-tenant-of = Organisation: { $tenant }
console-git-owns-users = This organisation's users are declared in Git ({ $file }): change them there, or ask for interactive edits.
console-invited = Invitation sent to { $email }.
console-deleted = { $email } is deleted.
managed-git = Git
managed-console = Console or API
field-name = Name
field-role = Role
field-status = Status
role-owner = Owner
role-admin = Admin
role-user = User
status-invited = Invited
status-active = Active
status-disabled = Disabled
yes = Yes
no = No

## The tenant console: users
users-invite-heading = Invite a user
users-invite = Send the invitation
users-list-heading = Users
users-search = Search users
users-email-starts = Email starts with
users-any = Any
users-filter = Show
users-shown = { $count } shown
users-two-step = Two-step verification
users-managed-by = Managed by
users-next-page = Next page
user-back = All users
user-sessions = Sessions now
user-change-role = Change the role
user-role-ends-sessions = A new role ends the user's sessions: they sign in again.
user-disable = Disable
user-enable = Enable
user-disable-help = A disabled user cannot sign in; their sessions end now.
user-enable-help = The user can sign in again.
user-end-sessions = End all sessions
user-end-sessions-help = Signs the user out everywhere, now.
user-unlock = Unlock
user-unlock-help = Forgets failed sign-in attempts, so a locked-out user can try again at once.
user-resend = Send a new invitation
user-resend-help = A new link is mailed; earlier links stop working.
user-delete = Delete
user-delete-confirm = Yes, delete this user and end their sessions
user-delete-unconfirmed = Tick the box to confirm the deletion.
user-done-role = The role is changed.
user-done-status = The status is changed.
user-done-sessions = The user's sessions are ended.
user-done-unlock = The user's failed attempts are forgotten.
user-done-resend = A new invitation is on its way.
user-rule-git = This user is declared in Git ({ $file }): change them there.
user-rule-admin-owner = Only owners can change, disable, delete or unlock an owner.
user-rule-last-owner = This is the organisation's only active owner: make another user owner before you change their role, disable or delete them.
problem-last-owner = The organisation needs an active owner: make another user owner first.
problem-email-taken = This email is already a user of this organisation.
problem-email-unavailable = This email cannot be invited here. Use another address, or ask the platform's support.
problem-stale = Someone changed this user since you opened the page. Here is what it is now; try again if you still want to.
problem-not-invited = This user has already accepted their invitation.
problem-tenant-not-active = The organisation is not active: it must be restored before users are invited.
problem-other-tenant = You are signed in to another organisation. This page is not yours to see; the attempt is recorded.
problem-owners-only = Only owners can do this to an owner.

## Platform staff
login-staff = Platform operators and auditors: sign in with your identity provider
staff-title = Platform sign-in
staff-not-configured = Platform staff do not sign in in a browser here: no identity provider with a client secret is configured (--oidc-issuer-url, --oidc-client-secret).
staff-continuing = Continuing to your identity provider
staff-unreachable = The identity provider cannot be reached right now. Try again in a moment.
staff-no-role = Your identity provider signed you in, but none of your groups gives you a role on this platform. Ask whoever manages the platform's groups.
staff-expired = This sign-in was already used or has expired. Start again.
staff-other-browser = This sign-in was started in another browser. Start again in this one.
staff-refused = The identity provider's answer was refused. Start again; if it happens again, ask whoever manages the platform's sign-in.
staff-again = Sign in again

## The operator console
console-tenants = Tenants
tenant-active = Active
tenant-suspended = Suspended
tenant-pending-deletion = Pending deletion
managed-git-file = Git ({ $file })
tenant-created = Tenant { $tenant } is provisioned; its owner is invited.
tenant-provision-heading = Provision a tenant
tenant-name = Name
tenant-name-help = The name is lower-case letters, digits and hyphens, such as acme-corp. The owner gets an invitation by mail.
tenant-display-name = Display name
tenant-plan = Plan
tenant-owner-email = Owner's email
tenant-applications = Applications (optional, comma-separated)
tenant-provision = Provision
tenant-search = Search tenants
tenant-name-starts = Name starts with
tenant-state = State
tenant-purge = Purged on
problem-tenant-exists = A tenant with this name exists already (or its name is still reserved). Choose another name.
problem-not-allowed = You are not allowed to do this. The attempt is recorded.

## The auditor console
console-audit = Audit log
audit-search = Search the audit log
audit-from = From (day)
audit-to = To (day, included)
audit-tenant = Tenant
audit-actor = Actor
audit-action = Action
audit-outcome = Outcome
audit-success = Success
audit-failure = Failure
audit-resource = Resource starts with
audit-export = Export these rows as CSV
audit-time = Time (UTC)
audit-chains = Hash chains
audit-chain = Chain
audit-last-seq = Last row
audit-head = Head hash
audit-checkpoint = Last signed checkpoint: { $when }, key { $key }.
audit-no-checkpoint = No signed checkpoint yet (--audit-signing-key).
audit-verify-note = To check every row against its chain and the checkpoints: gatehouse audit verify.
tenant-heading = The tenant
tenant-purged-on = purged on { $day }
tenant-suspend = Suspend
tenant-reason = Reason (kept in the audit log, shown to its admins)
tenant-suspend-help = Its users' sessions end and its applications' keys are refused until it is restored.
tenant-restore = Restore
tenant-restore-help = The tenant is active again: its users sign in, its keys work.
tenant-delete = Delete
tenant-delete-help = The tenant is suspended and purged after { $days } days; until then it can be restored.
tenant-delete-confirm = Yes, delete this tenant
tenant-delete-unconfirmed = Tick the box to confirm the deletion.
tenant-done-suspend = The tenant is suspended.
tenant-done-restore = The tenant is active again.
tenant-done-delete = The tenant is pending deletion.

## The tenant console: subscription
console-subscription = Subscription
subscription-plan = Plan
subscription-includes = What the plan includes
subscription-flag = Flag
subscription-value = Value
subscription-change-to = Change the plan to
subscription-change = Change the plan
subscription-changed = The plan is changed.
subscription-owners-only = Only the organisation's owners change the plan.
subscription-git = The plan is declared in Git ({ $file }): change it there.
subscription-budget = Budget this month
subscription-month = Month
subscription-usage = Usage so far
subscription-limit = Limit
subscription-state = State
budget-unlimited = No budget
budget-ok = Within the budget
budget-warning = Past a warning threshold
budget-exceeded = At or past the limit
budget-no-limit = None

## A tenant's single sign-on in its console
console-sso = Single sign-on
sso-back = Back to the single sign-on settings
sso-intro = Your organisation's people can sign in through your own OpenID Connect identity provider. Enter it, verify it, complete a test sign-in, then activate it: nothing changes for anyone before that.
sso-where = Where it stands
sso-none = Not set up
sso-state-draft = Entered, not verified
sso-state-verified = Verified, not tested
sso-state-tested = Tested, ready to activate
sso-state-active = Active: the login page sends your domains to the provider
sso-redirect-uri = Redirect URI to register at the provider
sso-verified-at = Last verified
sso-tested-at = Last test sign-in
sso-git = The identity provider is declared in Git ({ $file }): change it there.
sso-step-enter = Enter the provider's issuer, client and email domains.
sso-step-verify = Verify: Gatehouse reads its discovery document and keys.
sso-step-test = Test: sign in once at the provider; nothing changes.
sso-step-activate = Activate: the login page sends your domains to it.
sso-verify = Verify the provider
sso-verify-help = Reads the provider's discovery document and signing keys and says every problem it finds.
sso-verify-passed = The provider passed verification: complete a test sign-in next.
sso-verify-failed = The provider did not pass verification:
sso-test = Test sign-in
sso-test-title = Continuing to the test sign-in
sso-test-help = Sign in at the provider with an account in your domains. Nobody is signed in to Gatehouse by it.
sso-activate = Activate
sso-activate-help = From now on the login page sends the people of your domains to the provider.
sso-settings = Provider settings
sso-issuer = Issuer URL
sso-issuer-help = Exactly as the provider's tokens name it (https).
sso-client-id = Client ID
sso-client-secret = Client secret
sso-secret-keep = Leave empty to keep the stored secret. It is sealed and never shown.
sso-secret-sealed = Sealed when stored and never shown again.
sso-domains = Email domains
sso-domains-help = Separated by commas or spaces, for example acme.example.
sso-jit = Unknown people of your domains
sso-jit-none = Are refused (invite them first)
sso-mandatory = Refuse passwords once the provider is active
sso-save-help = Saving changes the provider back to "entered": verify and test it again.
sso-save = Save the settings
sso-remove = Remove single sign-on
sso-remove-confirm = Yes, remove it: people sign in with passwords again
sso-remove-unconfirmed = Tick the box to confirm the removal.
sso-owners-only = Only the organisation's owners set up single sign-on.
sso-done-save = The settings are saved. Verify the provider next.
sso-done-activate = Single sign-on is active.
sso-done-remove = Single sign-on is removed: people sign in with passwords.
problem-not-verified = Verify the provider before testing it.
problem-not-tested = The provider must pass verification and a test sign-in before it is activated.
problem-domain-taken = Another organisation already signs in one of these email domains.

## An operator's page of one tenant
overview-title = Tenant { $tenant }
overview-back = All tenants
overview-approved = Your approval is recorded.
overview-flags = Flags
overview-flags-caption = The plan's default, the tenant's override, and the value its applications get.
overview-plan-default = Plan default
overview-override = Override
overview-effective = Effective value
overview-applications = Applications
overview-no-applications = No application reads this tenant.
overview-pending = Budget overrides waiting for approval
overview-no-pending = None.
overview-pending-caption = Two people other than the one who asked must approve an override.
overview-reason = Reason
overview-asked = Asked
overview-requested = by { $who } at { $at }
overview-approvals = Approved by
overview-action = Action
overview-approve = Approve
overview-sync = Sync with Git
overview-synced-commit = Synced commit
overview-applied-commit = Last commit that changed it
overview-errors = Its files have problems:
overview-no-drift = No drift: the live rows are what Git applied.
overview-drift-caption = Fields that differ from what Git applied: the applied and live values, who changed them and when.
overview-resource = Resource
overview-field = Field
overview-applied = Applied
overview-live = Live
overview-changed-by = Changed by
overview-changed-at = Changed at
overview-orphans = Live resources Git does not declare:
overview-history = History
overview-no-history = No pass has touched this tenant yet.
overview-history-caption = The last passes of the reconciler that touched this tenant, newest first.
overview-when = When (UTC)
overview-trigger = Trigger
overview-version = Version
overview-change = Change
overview-author = Author
sync-synced = Synced
sync-out-of-sync = Out of sync
sync-drifted = Drifted
sync-error = Error
sync-unmanaged = Not managed by Git

## The platform page of the operator console
console-platform = Platform
platform-sync-picture = Tenants by sync state
platform-tenants-counted = { $count } tenants.
platform-paused = paused
platform-source = Configuration version
platform-last-attempt = Last pass
platform-last-success = Last successful pass
platform-last-error = The last pass failed:
platform-leader = Runs the reconciler
platform-leader-mark = leader
platform-sync-now = Sync now
platform-sync-now-help = The reconciler fetches the repository and applies it at once.
platform-pause = Pause
platform-pause-help = Nothing from Git is applied until you resume; drift is still reported.
platform-resume = Resume
platform-resume-help = The reconciler applies Git again from its next pass.
platform-done-sync = A pass is requested.
platform-done-pause = Reconciling is paused.
platform-done-resume = Reconciling resumes.
platform-replicas = Replicas
platform-replicas-caption = Every replica seen in the last day; each says it is alive every 15 seconds.
platform-address = Address
platform-started = Started
platform-seen = Last seen
platform-seen-now = now
platform-not-seen-since = not seen since { $at }
platform-outboxes = Outboxes
platform-outboxes-caption = Mail and webhooks not yet delivered, those given up on, and the oldest waiting. gatehouse mail list shows the mail.
platform-outbox = Outbox
platform-waiting = Waiting
platform-failed = Given up
platform-oldest = Oldest waiting since
platform-mail = Mail
platform-webhooks = Webhooks
platform-audit = Audit log
platform-checkpoint = Last signed checkpoint:
platform-no-checkpoint = No signed checkpoint yet (set GATEHOUSE_AUDIT_SIGNING_KEY).
platform-audit-link = Search the audit log and the state of its hash chains
sync-paused = Paused
sync-unknown = Not yet known

## Pictures
budget-picture-title = Usage this month against the limit
budget-picture-of = { $usage } of { $limit } used ({ $share } %).
budget-picture-warn = Warnings at { $at }.
budget-picture-unlimited = { $usage } used; no limit.
audit-picture-title = Audit events per day
audit-picture-caption = { $total } events on this page over { $days } days; the most, { $most }, on { $day }.

## Applications and their keys in the operator console
console-apps = Applications
apps-caption = Every application; open one for its API keys.
apps-back = All applications
app-title = Application { $app }
app-owner = Owner
app-scopes = Scopes
app-keys = API keys
app-no-keys = No key yet.
app-keys-caption = Its keys, never their secrets.
app-key-id = Key
app-key-created = Issued
app-key-last-used = Last used
app-key-active = Active, no expiry
app-key-expires-at = Active until { $at }
app-key-expired-at = Expired { $at }
app-key-revoked-at = Revoked { $at }
app-revoke = Revoke
app-revoke-confirm = Revoke { $key } now
app-revoke-unconfirmed = Tick the box to confirm the revocation.
app-key-revoked = Key { $key } is revoked on every replica.
app-issue = Issue a key
app-expires-in = Expires in
app-expires-help = Such as 90d or 12h; empty: it does not expire.
app-key-issued = Key { $key } is issued with every scope of the application.
app-key-secret = The whole key
app-key-once = Store it now: it is shown this once and Gatehouse keeps only its hash.
tenant-sync = Sync with Git
platform-outboxes-operators = Only operators read the outboxes.
sso-step-done = (done)
apps-none = No application is declared or registered yet.

## Mail, in its recipient's language
mail-hello-name = Hello { $name },
mail-hello = Hello,
mail-invitation-subject = You are invited to { $organisation }
mail-invitation-lead = You have been invited to { $organisation }. Choose your password to accept the invitation:
mail-invitation-validity = The link works once and for { $valid }.
mail-invitation-footer = If you did not expect this invitation, ignore this message.
mail-reset-subject = Reset your password
mail-reset-lead = Someone asked to reset the password of your account. Choose a new password here:
mail-reset-validity = The link works once and for { $valid }. Every session of your account ends when you use it.
mail-reset-footer = If you did not ask for this, ignore this message: your password stays as it is.
mail-budget-subject = The budget of { $organisation }
mail-budget-where = The budget's state, usage and overrides are at the address above.
mail-budget-footer = You receive this as an owner of { $organisation }.
mail-days = { $n ->
    [one] { $n } day
   *[other] { $n } days
}
mail-hours = { $n ->
    [one] { $n } hour
   *[other] { $n } hours
}
mail-minutes = { $n ->
    [one] { $n } minute
   *[other] { $n } minutes
}
app-status-active = Active
app-status-disabled = Disabled
trigger-interval = Interval
trigger-webhook = Git webhook
trigger-manual = Sync now
trigger-file-change = File change
trigger-start = Start
platform-no-replicas = No replica has said it is alive in the last day.
problem-title = Something is wrong with this request
problem-bad-address = This address is not one Gatehouse understands: check the link, or start again from the console.

## Budget notices, said in each owner's language
budget-said-limit = { $tenant } has reached its monthly limit: { $usage } of { $limit } (onLimit: { $onLimit }).
budget-said-threshold = { $tenant } has used { $threshold } % of its monthly budget: { $usage } of { $limit }.
budget-said-request = { $requester } asks to raise the monthly limit of { $tenant } from { $from } to { $to } for { $lasts } ({ $reason }); two other people must approve.
budget-said-grant = { $person } approved the override of { $tenant }: its monthly limit is { $limit } until { $until }.
budget-said-approve = { $person } approved the override of { $tenant } (limit { $limit }); one more person must.

## What verifying a tenant's identity provider found
sso-problem-not-url = the { $field } `{ $url }` is not a URL ({ $error })
sso-problem-http = the { $field } `{ $url }` uses http: it must use https
sso-problem-scheme = the { $field } `{ $url }` has scheme `{ $scheme }`: it must use https
sso-problem-resolve = the { $field } `{ $url }`: cannot resolve `{ $host }`: { $error }
sso-problem-private = the { $field } `{ $url }` resolves to { $ip }, a private or local address Gatehouse does not call
sso-problem-discovery = cannot read the discovery document: { $error }
sso-problem-issuer-differs = the discovery document names the issuer `{ $named }`, not `{ $issuer }`: they must be exactly equal
sso-problem-no-issuer = { $url } has no `issuer`
sso-problem-missing = the discovery document has no `{ $name }`
sso-problem-no-code-flow = the provider does not support the code flow (response types: { $types })
sso-problem-algs = the provider signs ID tokens only with [{ $algs }]; Gatehouse checks RS256, PS256, ES256 or EdDSA (and their larger sizes)
sso-problem-no-key = the JWKS at { $url } has no signing key Gatehouse can use
sso-problem-jwks = cannot fetch the JWKS: { $error }
