# Die Seiten von Gatehouse auf Deutsch. Jede Meldung hat denselben Schlüssel wie in en.ftl.
# Argumente: { $email }, { $seconds }, { $tenant }.

## Das Seitengerüst
layout-skip = Zum Inhalt springen
layout-language = Sprache

## Gemeinsame Wörter
continue = Weiter
sign-out = Abmelden
back-to-sign-in = Zurück zur Anmeldung
field-email = E-Mail-Adresse
field-password = Passwort
field-code = Bestätigungscode
field-new-password = Neues Passwort (8 bis 128 Zeichen)
failed-title = Etwas ist schiefgegangen
failed-text = Bei uns ist etwas schiefgegangen. Bitte versuchen Sie es gleich noch einmal.
csrf-expired-title = Bitte noch einmal
csrf-expired = Dieses Formular ist abgelaufen oder wurde in einem anderen Browser geöffnet. Es wurde nichts geändert.
csrf-start-again = Neu beginnen
too-many-title = Zu viele Versuche
too-many = Zu viele Versuche aus Ihrem Netzwerk. Versuchen Sie es in { $seconds } Sekunden noch einmal.

## Anmeldung
login-title = Anmelden
login-signed-out = Sie sind abgemeldet.
login-continue = Weiter
login-password-title = Passwort eingeben
# Gefolgt von der E-Mail-Adresse, fett.
login-signing-in-as = Anmeldung als
login-not-you = nicht Sie?
login-sign-in = Anmelden
login-forgot = Passwort vergessen?
login-totp-title = Bestätigung in zwei Schritten
login-code-help = Der sechsstellige Code Ihrer Authenticator-App oder einer Ihrer Wiederherstellungscodes.
login-verify = Bestätigen
login-enrol-title = Bestätigung in zwei Schritten einrichten
login-enrol-intro = Ihre Rolle verlangt eine Bestätigung in zwei Schritten. Scannen Sie diesen Code mit einer Authenticator-App oder geben Sie den Schlüssel unten dort ein, dann den sechsstelligen Code, den sie anzeigt.
login-enrol-key = Schlüssel:
login-enrol-qr = QR-Code des Schlüssels für Ihre Authenticator-App
login-confirm = Bestätigen
login-recovery-title = Wiederherstellungscodes sichern
login-recovery-intro = Die Bestätigung in zwei Schritten ist eingeschaltet. Bewahren Sie diese Wiederherstellungscodes sicher auf: Jeder meldet Sie einmal an, falls Sie Ihre Authenticator-App verlieren. Sie werden nur jetzt angezeigt.
login-signed-in-title = Angemeldet
login-sso-title = Weiter zur Anmeldung Ihrer Organisation
problem-email-invalid = Geben Sie Ihre E-Mail-Adresse ein, zum Beispiel name@example.com.
problem-sign-in-expired = Ihre Anmeldung ist abgelaufen; bitte beginnen Sie neu.
problem-wrong-password = E-Mail-Adresse oder Passwort ist falsch.
problem-wrong-code = Dieser Code ist falsch oder wurde schon verwendet.
problem-wrong-enrol-code = Dieser Code ist falsch. Scannen Sie diesen neuen Code und versuchen Sie es noch einmal.
problem-locked = Zu viele fehlgeschlagene Versuche. Versuchen Sie es in { $seconds } Sekunden noch einmal.
problem-account-disabled = Dieses Konto ist deaktiviert; wenden Sie sich an eine Administratorin oder einen Administrator Ihrer Organisation.
problem-tenant-suspended = Der Zugang Ihrer Organisation ist gesperrt; wenden Sie sich an ihre Inhaberin oder ihren Inhaber oder an den Support der Plattform.
problem-sso-required = Ihre Organisation meldet Sie über ihren eigenen Identitätsanbieter an: Fahren Sie auf der Anmeldeseite fort.

## Die Kontoseite
account-title = Ihr Konto
# Gefolgt von der E-Mail-Adresse, fett.
account-signed-in-as = Angemeldet als
account-organisation = Organisation
account-role = Rolle
account-console = Ihre Organisation verwalten

## Links aus E-Mails
forgot-title = Passwort vergessen?
forgot-intro = Geben Sie die E-Mail-Adresse ein, mit der Sie sich anmelden; wir senden Ihnen einen Link, um ein neues Passwort zu wählen.
forgot-send = Link senden
forgot-sent-title = Sehen Sie in Ihr Postfach
forgot-sent = Falls { $email } ein Konto hat, ist ein Link zum Wählen eines neuen Passworts unterwegs. Er funktioniert einmal.
invitation-title = Einladung annehmen
invitation-button = Passwort setzen und annehmen
reset-title = Neues Passwort wählen
reset-button = Neues Passwort setzen
link-damaged = Der Link ist beschädigt; öffnen Sie ihn noch einmal aus der E-Mail.
link-unreadable = Das Formular konnte nicht gelesen werden; öffnen Sie den Link noch einmal aus der E-Mail.
link-done-title = Passwort gesetzt
link-done = Ihr Passwort ist gesetzt. Sie können sich jetzt als { $email } anmelden.
link-invalid-title = Link ungültig

## Gatehouse als OpenID-Anbieter von Anwendungen
oidc-damaged-title = Die Anmeldeanfrage ist beschädigt
oidc-damaged = Gehen Sie zurück zur Anwendung und versuchen Sie es noch einmal.
oidc-unknown-app-title = Unbekannte Anwendung
oidc-unknown-app = Die Anwendung, die Sie hierher geschickt hat, ist bei Gatehouse nicht registriert. Wenden Sie sich an ihre Entwickler.
oidc-link-invalid-title = Dieser Anmeldelink ist ungültig
oidc-unregistered-return = Die Anwendung möchte zu einer Adresse zurückkehren, die sie nicht registriert hat. Wenden Sie sich an ihre Entwickler.
oidc-bad-address = Die Adresse der Anwendung ist ungültig.
oidc-logout-invalid-title = Dieser Abmeldelink ist ungültig
oidc-logout-other-app = Die darin genannte Anwendung hat Sie nicht angemeldet.
oidc-logout-unregistered = Die Anwendung möchte zu einer Adresse zurückkehren, die sie nicht registriert hat.
logout-title = Abmelden
logout-question = Möchten Sie sich von Gatehouse und den Anwendungen abmelden, bei denen Sie sich damit angemeldet haben?
signed-out-title = Abgemeldet

## Anmeldung über den eigenen Identitätsanbieter einer Organisation
sso-tested-title = Testanmeldung erfolgreich
sso-tested = Der Identitätsanbieter von { $tenant } hat { $email } mit einer bestätigten E-Mail-Adresse aus einer seiner Domains angemeldet. Es wurde nichts geändert: Aktivieren Sie den Anbieter, um ihn zu verwenden.
sso-failed-title = Anmeldung nicht abgeschlossen

## Die Konsolen
console-nav = Konsole
console-users = Benutzer
console-tenant-of = Organisation: { $tenant }
console-git-owns-users = Die Benutzer dieser Organisation sind in Git festgelegt ({ $file }): Ändern Sie sie dort oder bitten Sie um interaktive Änderungen.
console-invited = Einladung an { $email } gesendet.
console-deleted = { $email } ist gelöscht.
managed-git = Git
managed-console = Konsole oder API
field-name = Name
field-role = Rolle
field-status = Status
role-owner = Inhaber
role-admin = Administrator
role-user = Benutzer
status-invited = Eingeladen
status-active = Aktiv
status-disabled = Deaktiviert
yes = Ja
no = Nein

## Die Konsole einer Organisation: Benutzer
users-invite-heading = Benutzer einladen
users-invite = Einladung senden
users-list-heading = Benutzer
users-search = Benutzer suchen
users-email-starts = E-Mail-Adresse beginnt mit
users-any = Alle
users-filter = Anzeigen
users-shown = { $count } angezeigt
users-two-step = Bestätigung in zwei Schritten
users-managed-by = Verwaltet über
users-next-page = Nächste Seite
user-back = Alle Benutzer
user-sessions = Aktuelle Sitzungen
user-change-role = Rolle ändern
user-role-ends-sessions = Eine neue Rolle beendet die Sitzungen des Benutzers: Er meldet sich neu an.
user-disable = Deaktivieren
user-enable = Aktivieren
user-disable-help = Ein deaktivierter Benutzer kann sich nicht anmelden; seine Sitzungen enden sofort.
user-enable-help = Der Benutzer kann sich wieder anmelden.
user-end-sessions = Alle Sitzungen beenden
user-end-sessions-help = Meldet den Benutzer überall ab, sofort.
user-unlock = Entsperren
user-unlock-help = Vergisst fehlgeschlagene Anmeldeversuche, damit ein gesperrter Benutzer es sofort wieder versuchen kann.
user-resend = Neue Einladung senden
user-resend-help = Ein neuer Link wird gesendet; frühere Links funktionieren nicht mehr.
user-delete = Löschen
user-delete-confirm = Ja, diesen Benutzer löschen und seine Sitzungen beenden
user-delete-unconfirmed = Setzen Sie das Häkchen, um das Löschen zu bestätigen.
user-done-role = Die Rolle ist geändert.
user-done-status = Der Status ist geändert.
user-done-sessions = Die Sitzungen des Benutzers sind beendet.
user-done-unlock = Die fehlgeschlagenen Versuche des Benutzers sind vergessen.
user-done-resend = Eine neue Einladung ist unterwegs.
user-rule-git = Dieser Benutzer ist in Git festgelegt ({ $file }): Ändern Sie ihn dort.
user-rule-admin-owner = Nur Inhaber können einen Inhaber ändern, deaktivieren, löschen oder entsperren.
user-rule-last-owner = Dies ist der einzige aktive Inhaber der Organisation: Machen Sie zuerst einen anderen Benutzer zum Inhaber, bevor Sie seine Rolle ändern, ihn deaktivieren oder löschen.
problem-last-owner = Die Organisation braucht einen aktiven Inhaber: Machen Sie zuerst einen anderen Benutzer zum Inhaber.
problem-email-taken = Diese E-Mail-Adresse gehört schon zu einem Benutzer dieser Organisation.
problem-email-unavailable = Diese E-Mail-Adresse kann hier nicht eingeladen werden. Verwenden Sie eine andere Adresse oder fragen Sie den Support der Plattform.
problem-stale = Jemand hat diesen Benutzer geändert, seit Sie die Seite geöffnet haben. So ist er jetzt; versuchen Sie es erneut, wenn Sie es noch möchten.
problem-not-invited = Dieser Benutzer hat seine Einladung schon angenommen.
problem-tenant-not-active = Die Organisation ist nicht aktiv: Sie muss wiederhergestellt werden, bevor Benutzer eingeladen werden.
problem-other-tenant = Sie sind bei einer anderen Organisation angemeldet. Diese Seite ist nicht für Sie; der Versuch wird protokolliert.
problem-owners-only = Nur Inhaber können das bei einem Inhaber tun.

## Plattform-Personal
login-staff = Betreiber und Prüfer der Plattform: mit Ihrem Identitätsanbieter anmelden
staff-title = Anmeldung für die Plattform
staff-not-configured = Das Personal der Plattform meldet sich hier nicht im Browser an: Kein Identitätsanbieter mit Client-Geheimnis ist eingerichtet (--oidc-issuer-url, --oidc-client-secret).
staff-continuing = Weiter zu Ihrem Identitätsanbieter
staff-unreachable = Der Identitätsanbieter ist gerade nicht erreichbar. Versuchen Sie es gleich noch einmal.
staff-no-role = Ihr Identitätsanbieter hat Sie angemeldet, aber keine Ihrer Gruppen gibt Ihnen eine Rolle auf dieser Plattform. Fragen Sie, wer die Gruppen der Plattform verwaltet.
staff-expired = Diese Anmeldung wurde schon verwendet oder ist abgelaufen. Beginnen Sie neu.
staff-other-browser = Diese Anmeldung wurde in einem anderen Browser begonnen. Beginnen Sie in diesem neu.
staff-refused = Die Antwort des Identitätsanbieters wurde abgelehnt. Beginnen Sie neu; geschieht es wieder, fragen Sie, wer die Anmeldung der Plattform verwaltet.
staff-again = Erneut anmelden

## Die Betreiberkonsole
console-tenants = Organisationen
tenant-active = Aktiv
tenant-suspended = Gesperrt
tenant-pending-deletion = Löschung vorgemerkt
managed-git-file = Git ({ $file })
tenant-created = Die Organisation { $tenant } ist eingerichtet; ihr Inhaber ist eingeladen.
tenant-provision-heading = Organisation einrichten
tenant-name = Name
tenant-name-help = Der Name besteht aus Kleinbuchstaben, Ziffern und Bindestrichen, zum Beispiel acme-corp. Der Inhaber erhält eine Einladung per E-Mail.
tenant-display-name = Anzeigename
tenant-plan = Tarif
tenant-owner-email = E-Mail-Adresse des Inhabers
tenant-applications = Anwendungen (optional, durch Kommas getrennt)
tenant-provision = Einrichten
tenant-search = Organisationen suchen
tenant-name-starts = Name beginnt mit
tenant-state = Zustand
tenant-purge = Endgültig gelöscht am
problem-tenant-exists = Eine Organisation mit diesem Namen gibt es schon (oder ihr Name ist noch reserviert). Wählen Sie einen anderen Namen.
problem-not-allowed = Das dürfen Sie nicht. Der Versuch wird protokolliert.

## Die Prüferkonsole
console-audit = Prüfprotokoll
audit-search = Prüfprotokoll durchsuchen
audit-from = Von (Tag)
audit-to = Bis (Tag, einschließlich)
audit-tenant = Organisation
audit-actor = Handelnde
audit-action = Aktion
audit-outcome = Ergebnis
audit-success = Erfolg
audit-failure = Fehlschlag
audit-resource = Ressource beginnt mit
audit-export = Diese Zeilen als CSV exportieren
audit-time = Zeit (UTC)
audit-chains = Hash-Ketten
audit-chain = Kette
audit-last-seq = Letzte Zeile
audit-head = Hash des Kopfes
audit-checkpoint = Letzter signierter Prüfpunkt: { $when }, Schlüssel { $key }.
audit-no-checkpoint = Noch kein signierter Prüfpunkt (--audit-signing-key).
audit-verify-note = Um jede Zeile gegen ihre Kette und die Prüfpunkte zu prüfen: gatehouse audit verify.
tenant-heading = Die Organisation
tenant-purged-on = endgültig gelöscht am { $day }
tenant-suspend = Sperren
tenant-reason = Grund (im Prüfprotokoll festgehalten, ihren Administratoren angezeigt)
tenant-suspend-help = Die Sitzungen ihrer Benutzer enden, und die Schlüssel ihrer Anwendungen werden abgelehnt, bis sie wiederhergestellt ist.
tenant-restore = Wiederherstellen
tenant-restore-help = Die Organisation ist wieder aktiv: Ihre Benutzer melden sich an, ihre Schlüssel funktionieren.
tenant-delete = Löschen
tenant-delete-help = Die Organisation wird gesperrt und nach { $days } Tagen endgültig gelöscht; bis dahin kann sie wiederhergestellt werden.
tenant-delete-confirm = Ja, diese Organisation löschen
tenant-delete-unconfirmed = Setzen Sie das Häkchen, um das Löschen zu bestätigen.
tenant-done-suspend = Die Organisation ist gesperrt.
tenant-done-restore = Die Organisation ist wieder aktiv.
tenant-done-delete = Die Löschung der Organisation ist vorgemerkt.

## Die Konsole einer Organisation: Abonnement
console-subscription = Abonnement
subscription-plan = Tarif
subscription-includes = Was der Tarif enthält
subscription-flag = Schalter
subscription-value = Wert
subscription-change-to = Tarif ändern auf
subscription-change = Tarif ändern
subscription-changed = Der Tarif ist geändert.
subscription-owners-only = Nur die Inhaber der Organisation ändern den Tarif.
subscription-git = Der Tarif ist in Git festgelegt ({ $file }): Ändern Sie ihn dort.
subscription-budget = Budget in diesem Monat
subscription-month = Monat
subscription-usage = Bisheriger Verbrauch
subscription-limit = Grenze
subscription-state = Zustand
budget-unlimited = Kein Budget
budget-ok = Im Budget
budget-warning = Über einer Warnschwelle
budget-exceeded = An oder über der Grenze
budget-no-limit = Keine

## A tenant's single sign-on in its console
console-sso = Single Sign-on
sso-back = Zurück zu den Single-Sign-on-Einstellungen
sso-intro = Die Mitglieder Ihrer Organisation können sich über Ihren eigenen OpenID-Connect-Identitätsanbieter anmelden. Tragen Sie ihn ein, prüfen Sie ihn, schließen Sie eine Testanmeldung ab und aktivieren Sie ihn dann: Vorher ändert sich für niemanden etwas.
sso-where = Stand
sso-none = Nicht eingerichtet
sso-state-draft = Eingetragen, nicht geprüft
sso-state-verified = Geprüft, nicht getestet
sso-state-tested = Getestet, bereit zur Aktivierung
sso-state-active = Aktiv: Die Anmeldeseite leitet Ihre Domains an den Anbieter weiter
sso-redirect-uri = Beim Anbieter zu registrierende Weiterleitungs-URI
sso-verified-at = Zuletzt geprüft
sso-tested-at = Letzte Testanmeldung
sso-git = Der Identitätsanbieter ist in Git deklariert ({ $file }): Ändern Sie ihn dort.
sso-step-enter = Aussteller, Client und E-Mail-Domains des Anbieters eintragen.
sso-step-verify = Prüfen: Gatehouse liest sein Discovery-Dokument und seine Schlüssel.
sso-step-test = Testen: Einmal beim Anbieter anmelden; nichts ändert sich.
sso-step-activate = Aktivieren: Die Anmeldeseite leitet Ihre Domains an ihn weiter.
sso-verify = Anbieter prüfen
sso-verify-help = Liest das Discovery-Dokument und die Signaturschlüssel des Anbieters und nennt jedes gefundene Problem.
sso-verify-passed = Der Anbieter hat die Prüfung bestanden: Schließen Sie als Nächstes eine Testanmeldung ab.
sso-verify-failed = Der Anbieter hat die Prüfung nicht bestanden:
sso-test = Testanmeldung
sso-test-title = Weiter zur Testanmeldung
sso-test-help = Melden Sie sich beim Anbieter mit einem Konto aus Ihren Domains an. Niemand wird dadurch bei Gatehouse angemeldet.
sso-activate = Aktivieren
sso-activate-help = Ab jetzt leitet die Anmeldeseite die Mitglieder Ihrer Domains an den Anbieter weiter.
sso-settings = Einstellungen des Anbieters
sso-issuer = Aussteller-URL
sso-issuer-help = Genau so, wie die Tokens des Anbieters ihn nennen (https).
sso-client-id = Client-ID
sso-client-secret = Client-Geheimnis
sso-secret-keep = Leer lassen, um das gespeicherte Geheimnis zu behalten. Es ist versiegelt und wird nie angezeigt.
sso-secret-sealed = Wird beim Speichern versiegelt und nie wieder angezeigt.
sso-domains = E-Mail-Domains
sso-domains-help = Durch Kommas oder Leerzeichen getrennt, zum Beispiel acme.example.
sso-jit = Unbekannte Personen Ihrer Domains
sso-jit-none = Werden abgewiesen (zuerst einladen)
sso-mandatory = Passwörter ablehnen, sobald der Anbieter aktiv ist
sso-save-help = Speichern setzt den Anbieter auf „eingetragen“ zurück: Prüfen und testen Sie ihn erneut.
sso-save = Einstellungen speichern
sso-remove = Single Sign-on entfernen
sso-remove-confirm = Ja, entfernen: Alle melden sich wieder mit Passwörtern an
sso-remove-unconfirmed = Setzen Sie das Häkchen, um das Entfernen zu bestätigen.
sso-owners-only = Nur die Inhaber der Organisation richten Single Sign-on ein.
sso-done-save = Die Einstellungen sind gespeichert. Prüfen Sie als Nächstes den Anbieter.
sso-done-activate = Single Sign-on ist aktiv.
sso-done-remove = Single Sign-on ist entfernt: Alle melden sich mit Passwörtern an.
problem-not-verified = Prüfen Sie den Anbieter, bevor Sie ihn testen.
problem-not-tested = Der Anbieter muss die Prüfung und eine Testanmeldung bestehen, bevor er aktiviert wird.
problem-domain-taken = Eine andere Organisation meldet bereits eine dieser E-Mail-Domains an.

## An operator's page of one tenant
overview-title = Mandant { $tenant }
overview-back = Alle Mandanten
overview-approved = Ihre Zustimmung ist erfasst.
overview-flags = Flags
overview-flags-caption = Der Standardwert des Tarifs, die Abweichung des Mandanten und der Wert, den seine Anwendungen erhalten.
overview-plan-default = Standard des Tarifs
overview-override = Abweichung
overview-effective = Wirksamer Wert
overview-applications = Anwendungen
overview-no-applications = Keine Anwendung liest diesen Mandanten.
overview-pending = Budgetausnahmen, die auf Zustimmung warten
overview-no-pending = Keine.
overview-pending-caption = Zwei Personen außer der, die sie beantragt hat, müssen einer Ausnahme zustimmen.
overview-reason = Grund
overview-asked = Beantragt
overview-requested = von { $who } am { $at }
overview-approvals = Zugestimmt von
overview-action = Aktion
overview-approve = Zustimmen
overview-sync = Abgleich mit Git
overview-synced-commit = Abgeglichener Commit
overview-applied-commit = Letzter Commit, der ihn geändert hat
overview-errors = Seine Dateien haben Probleme:
overview-no-drift = Keine Abweichung: Die Daten sind so, wie Git sie angewendet hat.
overview-drift-caption = Felder, die von dem abweichen, was Git angewendet hat: angewendeter und aktueller Wert, wer sie wann geändert hat.
overview-resource = Ressource
overview-field = Feld
overview-applied = Angewendet
overview-live = Aktuell
overview-changed-by = Geändert von
overview-changed-at = Geändert am
overview-orphans = Vorhandene Ressourcen, die Git nicht deklariert:
overview-history = Verlauf
overview-no-history = Noch kein Durchlauf hat diesen Mandanten berührt.
overview-history-caption = Die letzten Durchläufe des Abgleichs, die diesen Mandanten berührt haben, neueste zuerst.
overview-when = Wann (UTC)
overview-trigger = Auslöser
overview-version = Version
overview-change = Änderung
overview-author = Autor
sync-synced = Abgeglichen
sync-out-of-sync = Nicht abgeglichen
sync-drifted = Abgewichen
sync-error = Fehler
sync-unmanaged = Nicht von Git verwaltet

## The platform page of the operator console
console-platform = Plattform
platform-sync-picture = Mandanten nach Abgleichsstand
platform-tenants-counted = { $count } Mandanten.
platform-paused = angehalten
platform-source = Konfigurationsversion
platform-last-attempt = Letzter Durchlauf
platform-last-success = Letzter erfolgreicher Durchlauf
platform-last-error = Der letzte Durchlauf ist fehlgeschlagen:
platform-leader = Führt den Abgleich aus
platform-leader-mark = führend
platform-sync-now = Jetzt abgleichen
platform-sync-now-help = Der Abgleich holt das Repository und wendet es sofort an.
platform-pause = Anhalten
platform-pause-help = Bis zur Fortsetzung wird nichts aus Git angewendet; Abweichungen werden weiter gemeldet.
platform-resume = Fortsetzen
platform-resume-help = Der Abgleich wendet Git ab dem nächsten Durchlauf wieder an.
platform-done-sync = Ein Durchlauf ist angefordert.
platform-done-pause = Der Abgleich ist angehalten.
platform-done-resume = Der Abgleich läuft wieder.
platform-replicas = Replikate
platform-replicas-caption = Jedes Replikat, das am letzten Tag gesehen wurde; jedes meldet sich alle 15 Sekunden.
platform-address = Adresse
platform-started = Gestartet
platform-seen = Zuletzt gesehen
platform-seen-now = jetzt
platform-not-seen-since = nicht gesehen seit { $at }
platform-outboxes = Ausgänge
platform-outboxes-caption = Noch nicht zugestellte E-Mails und Webhooks, aufgegebene und die älteste wartende. gatehouse mail list zeigt die E-Mails.
platform-outbox = Ausgang
platform-waiting = Wartend
platform-failed = Aufgegeben
platform-oldest = Älteste wartet seit
platform-mail = E-Mail
platform-webhooks = Webhooks
platform-audit = Audit-Protokoll
platform-checkpoint = Letzter signierter Kontrollpunkt:
platform-no-checkpoint = Noch kein signierter Kontrollpunkt (GATEHOUSE_AUDIT_SIGNING_KEY setzen).
platform-audit-link = Das Audit-Protokoll und den Stand seiner Hash-Ketten durchsuchen
sync-paused = Angehalten
sync-unknown = Noch unbekannt

## Pictures
budget-picture-title = Verbrauch in diesem Monat gegenüber dem Limit
budget-picture-of = { $usage } von { $limit } verbraucht ({ $share } %).
budget-picture-warn = Warnungen bei { $at }.
budget-picture-unlimited = { $usage } verbraucht; kein Limit.
audit-picture-title = Audit-Ereignisse pro Tag
audit-picture-caption = { $total } Ereignisse auf dieser Seite an { $days } Tagen; die meisten, { $most }, am { $day }.

## Applications and their keys in the operator console
console-apps = Anwendungen
apps-caption = Alle Anwendungen; öffnen Sie eine für ihre API-Schlüssel.
apps-back = Alle Anwendungen
app-title = Anwendung { $app }
app-owner = Verantwortlich
app-scopes = Berechtigungen
app-keys = API-Schlüssel
app-no-keys = Noch kein Schlüssel.
app-keys-caption = Ihre Schlüssel, nie deren Geheimnisse.
app-key-id = Schlüssel
app-key-created = Ausgestellt
app-key-last-used = Zuletzt verwendet
app-key-active = Aktiv, ohne Ablauf
app-key-expires-at = Aktiv bis { $at }
app-key-expired-at = Abgelaufen { $at }
app-key-revoked-at = Widerrufen { $at }
app-revoke = Widerrufen
app-revoke-confirm = { $key } jetzt widerrufen
app-revoke-unconfirmed = Setzen Sie das Häkchen, um den Widerruf zu bestätigen.
app-key-revoked = Schlüssel { $key } ist auf jedem Replikat widerrufen.
app-issue = Schlüssel ausstellen
app-expires-in = Läuft ab in
app-expires-help = Zum Beispiel 90d oder 12h; leer: läuft nicht ab.
app-key-issued = Schlüssel { $key } ist mit allen Berechtigungen der Anwendung ausgestellt.
app-key-secret = Der ganze Schlüssel
app-key-once = Speichern Sie ihn jetzt: Er wird nur dieses eine Mal gezeigt, Gatehouse behält nur seinen Hash.
tenant-sync = Abgleich mit Git
platform-outboxes-operators = Nur Betreiber sehen die Ausgänge.
sso-step-done = (erledigt)
apps-none = Noch keine Anwendung ist deklariert oder registriert.

## Mail, in its recipient's language
mail-hello-name = Hallo { $name },
mail-hello = Hallo,
mail-invitation-subject = Sie sind zu { $organisation } eingeladen
mail-invitation-lead = Sie wurden zu { $organisation } eingeladen. Wählen Sie Ihr Passwort, um die Einladung anzunehmen:
mail-invitation-validity = Der Link ist { $valid } lang gültig und funktioniert nur einmal.
mail-invitation-footer = Wenn Sie diese Einladung nicht erwartet haben, ignorieren Sie diese Nachricht.
mail-reset-subject = Passwort zurücksetzen
mail-reset-lead = Jemand hat verlangt, das Passwort Ihres Kontos zurückzusetzen. Wählen Sie hier ein neues Passwort:
mail-reset-validity = Der Link ist { $valid } lang gültig und funktioniert nur einmal. Wenn Sie ihn verwenden, enden alle Sitzungen Ihres Kontos.
mail-reset-footer = Wenn Sie das nicht verlangt haben, ignorieren Sie diese Nachricht: Ihr Passwort bleibt, wie es ist.
mail-budget-subject = Das Budget von { $organisation }
mail-budget-where = Stand, Verbrauch und Ausnahmen des Budgets finden Sie unter der Adresse oben.
mail-budget-footer = Sie erhalten dies als Inhaber von { $organisation }.
mail-days = { $n ->
    [one] { $n } Tag
   *[other] { $n } Tage
}
mail-hours = { $n ->
    [one] { $n } Stunde
   *[other] { $n } Stunden
}
mail-minutes = { $n ->
    [one] { $n } Minute
   *[other] { $n } Minuten
}
app-status-active = Aktiv
app-status-disabled = Deaktiviert
trigger-interval = Intervall
trigger-webhook = Git-Webhook
trigger-manual = Jetzt abgleichen
trigger-file-change = Dateiänderung
trigger-start = Start
platform-no-replicas = Kein Replikat hat sich am letzten Tag gemeldet.
problem-title = Mit dieser Anfrage stimmt etwas nicht
problem-bad-address = Diese Adresse versteht Gatehouse nicht: Prüfen Sie den Link oder beginnen Sie erneut in der Konsole.

## Budget notices, said in each owner's language
budget-said-limit = { $tenant } hat sein Monatslimit erreicht: { $usage } von { $limit } (onLimit: { $onLimit }).
budget-said-threshold = { $tenant } hat { $threshold } % seines Monatsbudgets verbraucht: { $usage } von { $limit }.
budget-said-request = { $requester } beantragt, das Monatslimit von { $tenant } für { $lasts } von { $from } auf { $to } zu erhöhen ({ $reason }); zwei weitere Personen müssen zustimmen.
budget-said-grant = { $person } hat der Ausnahme für { $tenant } zugestimmt: Sein Monatslimit ist bis { $until } { $limit }.
budget-said-approve = { $person } hat der Ausnahme für { $tenant } zugestimmt (Limit { $limit }); eine weitere Person muss zustimmen.

## What verifying a tenant's identity provider found
sso-problem-not-url = { $field } `{ $url }` ist keine URL ({ $error })
sso-problem-http = { $field } `{ $url }` verwendet http: erforderlich ist https
sso-problem-scheme = { $field } `{ $url }` hat das Schema `{ $scheme }`: erforderlich ist https
sso-problem-resolve = { $field } `{ $url }`: `{ $host }` lässt sich nicht auflösen: { $error }
sso-problem-private = { $field } `{ $url }` zeigt auf { $ip }, eine private oder lokale Adresse, die Gatehouse nicht aufruft
sso-problem-discovery = Das Discovery-Dokument lässt sich nicht lesen: { $error }
sso-problem-issuer-differs = Das Discovery-Dokument nennt den Aussteller `{ $named }`, nicht `{ $issuer }`: Beide müssen genau übereinstimmen
sso-problem-no-issuer = { $url } enthält kein `issuer`
sso-problem-missing = Dem Discovery-Dokument fehlt `{ $name }`
sso-problem-no-code-flow = Der Anbieter unterstützt den Code-Flow nicht (Antworttypen: { $types })
sso-problem-algs = Der Anbieter signiert ID-Tokens nur mit [{ $algs }]; Gatehouse prüft RS256, PS256, ES256 oder EdDSA (und ihre größeren Varianten)
sso-problem-no-key = Das JWKS unter { $url } enthält keinen Signaturschlüssel, den Gatehouse verwenden kann
sso-problem-jwks = Das JWKS lässt sich nicht abrufen: { $error }
