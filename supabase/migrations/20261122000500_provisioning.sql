-- Provisioning: what a new person gets (SPEC §6 Provisioning), for every sign-in path.
--
-- One transaction creates the person's own workspace, its default settings, the owner membership
-- and a welcome email in the outbox, accepts the open invitations of the person's verified email
-- (a membership with the invited role in each inviting workspace), and, for a Supabase Auth user,
-- writes workspace_id / workspace_role into auth.users.raw_app_meta_data (app metadata, which the
-- user cannot edit; never user metadata).
--
-- Callers:
--   identity.provision_auth_user(user id, now)  the signup-webhook function (Supabase Auth hooks and
--                                                the database webhook on auth.users)
--   identity.sign_in(...)                        otp-verify and workos-callback, for a new person
--
-- Every delivery of a webhook may arrive several times and in any order, so provisioning is an
-- "ensure": each call moves the person towards the same end state and never backwards.
--   * the own workspace is created once per person (identity.person_provisioning is the marker);
--   * the welcome email is one row per person (email_outbox is unique on person and template) and
--     only ever moves awaiting_confirmation -> ready;
--   * invitations are accepted only for an email the person has proven (a provider that verified it,
--     or auth.users.email_confirmed_at), so claiming an address never grants a workspace.
--
-- Every person owns exactly one personal workspace, invited or not: an invitation adds a membership
-- in the inviting workspace on top of it. That keeps the outcome the same on every path and in
-- every order of deliveries (a Supabase user who signs up unconfirmed gets the workspace at once and
-- the invited memberships when the confirmation arrives). The token's workspace is the owned one.

-- One row per provisioned person: the idempotency key of "create the own workspace once".
create table identity.person_provisioning (
  person_id uuid primary key references identity.person (id) on delete cascade,
  workspace_id uuid references identity.workspace (id) on delete set null,
  created_at timestamptz not null default now()
);
alter table identity.person_provisioning enable row level security;

-- Provisions a person who already exists (created by the caller in the same transaction).
--   p_email            where the welcome email goes (null: the person has no email, no welcome email)
--   p_email_verified   the person proved p_email: invitations are accepted and the welcome email is
--                      ready; else it waits as awaiting_confirmation
--   p_workspace_name   the own workspace's name (a default when empty)
-- Returns {person_id, workspace_id, workspace_role}: the workspace tokens carry.
create function identity.provision_person(
  p_person_id uuid,
  p_email text,
  p_email_verified boolean,
  p_workspace_name text,
  p_now timestamptz
) returns jsonb
language plpgsql
set search_path = pg_catalog, extensions
as $$
declare
  v_email extensions.citext := nullif(btrim(p_email), '');
  v_workspace_id uuid;
  v_current record;
begin
  -- The own workspace, once: a concurrent delivery waits here on the primary key, then skips.
  insert into identity.person_provisioning (person_id, created_at)
  values (p_person_id, p_now)
  on conflict (person_id) do nothing;
  if found then
    insert into identity.workspace (name, created_by, created_at)
    values (
      coalesce(left(nullif(btrim(p_workspace_name), ''), 200), 'Personal workspace'),
      p_person_id,
      p_now
    )
    returning id into v_workspace_id;
    insert into identity.workspace_settings (workspace_id, updated_at) values (v_workspace_id, p_now);
    insert into identity.membership (workspace_id, person_id, role, created_at)
    values (v_workspace_id, p_person_id, 'owner', p_now);
    update identity.person_provisioning set workspace_id = v_workspace_id
    where person_id = p_person_id;
  end if;

  -- Open invitations of a proven email (citext: case-insensitive). Several for one workspace give
  -- the strongest of their roles; a membership the person already has is kept as it is.
  if p_email_verified and v_email is not null then
    with accepted as (
      update identity.invitation i
      set accepted_at = p_now
      where i.email = v_email and i.accepted_at is null and i.expires_at > p_now
      returning i.workspace_id, i.role
    )
    insert into identity.membership (workspace_id, person_id, role, created_at)
    select distinct on (a.workspace_id) a.workspace_id, p_person_id, a.role, p_now
    from accepted a
    where a.workspace_id is not null
    order by a.workspace_id, array_position(array['owner', 'admin', 'member'], a.role)
    on conflict (workspace_id, person_id) do nothing;
  end if;

  select * into v_current from identity.current_workspace(p_person_id);

  -- One welcome email per person; it only ever moves from awaiting_confirmation to ready.
  if v_email is not null then
    insert into identity.email_outbox (person_id, to_email, template, status, payload, created_at, ready_at)
    values (
      p_person_id,
      v_email,
      'welcome',
      case when p_email_verified then 'ready' else 'awaiting_confirmation' end,
      jsonb_build_object(
        'workspace_id', v_current.workspace_id,
        'workspace_name', (select w.name from identity.workspace w where w.id = v_current.workspace_id)
      ),
      p_now,
      case when p_email_verified then p_now end
    )
    on conflict (person_id, template) do update
    set status = 'ready', ready_at = excluded.ready_at, to_email = excluded.to_email
    where identity.email_outbox.status = 'awaiting_confirmation' and excluded.status = 'ready';
  end if;

  return jsonb_build_object(
    'person_id', p_person_id,
    'workspace_id', v_current.workspace_id,
    'workspace_role', v_current.role
  );
end
$$;

-- Provisions a Supabase Auth user (signup-webhook: after-user-created hook, database webhook INSERT,
-- or UPDATE confirming the email). Reads the auth.users row itself rather than trusting the
-- delivery, so a late or repeated delivery can never move anything backwards; the row lock
-- serialises concurrent deliveries for one user. The person id is the auth user id.
--
-- The person keeps the email only once it is confirmed, and only when no other person holds it:
-- a taken email is never merged, the person stays without one and the answer says
-- email_conflict (the caller logs it). Anonymous users are provisioned when they become permanent.
--
-- Returns {person_id, workspace_id, workspace_role, email_conflict}, or {ignored: reason} for a
-- user that does not exist (deleted, or the obfuscated user Supabase answers a repeated signup
-- with) or is anonymous.
create function identity.provision_auth_user(p_user_id uuid, p_now timestamptz)
returns jsonb
language plpgsql
set search_path = pg_catalog, extensions
as $$
declare
  v_user record;
  v_email extensions.citext;
  v_confirmed boolean;
  v_name text;
  v_holder uuid;
  v_conflict boolean := false;
  v_result jsonb;
begin
  select u.id, u.email, u.email_confirmed_at, u.raw_user_meta_data, u.raw_app_meta_data,
    u.is_anonymous
  into v_user
  from auth.users u
  where u.id = p_user_id
  for update;
  if not found then
    return jsonb_build_object('ignored', 'user_not_found');
  end if;
  if v_user.is_anonymous then
    return jsonb_build_object('ignored', 'anonymous_user');
  end if;

  v_email := nullif(btrim(v_user.email), '');
  v_confirmed := v_user.email_confirmed_at is not null and v_email is not null;
  v_name := left(coalesce(
    nullif(btrim(v_user.raw_user_meta_data ->> 'full_name'), ''),
    nullif(btrim(v_user.raw_user_meta_data ->> 'name'), '')
  ), 200);

  insert into identity.person (id, display_name, created_at, updated_at)
  values (v_user.id, v_name, p_now, p_now)
  on conflict (id) do nothing;

  -- A confirmed email becomes the person's, unless another person already holds it.
  if v_confirmed and length(v_email) <= 254 and position('@' in v_email) > 1 then
    select p.id into v_holder from identity.person p where p.email = v_email;
    if v_holder is null then
      begin
        update identity.person set email = v_email, updated_at = p_now
        where id = v_user.id and email is null;
      exception when unique_violation then
        v_conflict := true; -- taken by a concurrent sign-in in the meantime
      end;
    elsif v_holder <> v_user.id then
      v_conflict := true;
    end if;
  end if;

  v_result := identity.provision_person(
    v_user.id,
    v_email,
    v_confirmed,
    coalesce(v_name, split_part(v_email, '@', 1)),
    p_now
  );

  -- App metadata, written only when it changes (every write of auth.users fires its triggers).
  if v_result ->> 'workspace_id' is distinct from v_user.raw_app_meta_data ->> 'workspace_id'
    or v_result ->> 'workspace_role' is distinct from v_user.raw_app_meta_data ->> 'workspace_role' then
    update auth.users
    set raw_app_meta_data = coalesce(raw_app_meta_data, '{}'::jsonb)
      || jsonb_build_object('workspace_id', v_result -> 'workspace_id', 'workspace_role', v_result -> 'workspace_role')
    where id = v_user.id;
  end if;

  return v_result || jsonb_build_object('email_conflict', v_conflict);
end
$$;

-- before-user-created in invite mode: may this email create an account? Case-insensitive (citext).
create function identity.has_open_invitation(p_email text, p_now timestamptz)
returns boolean
language sql stable
set search_path = pg_catalog, extensions
as $$
  select exists (
    select 1 from identity.invitation i
    where i.email = nullif(btrim(p_email), '')::extensions.citext
      and i.accepted_at is null and i.expires_at > p_now
  )
$$;

-- A provider sign-in (otp-verify, workos-callback), after the provider has answered, in one
-- transaction: the person upsert, provisioning of a new person, then a new session. Provisioning
-- comes before the session payload is computed, so the very first token carries workspace_id and
-- workspace_role. The provider verified the email it gave (upsert_person stores no other), so the
-- welcome email is ready at once. No auth.users row exists on these paths: no app metadata.
-- Returns the session payload plus is_new_user, or {error} from upsert_person.
create function identity.sign_in(
  p_provider text,
  p_provider_user_id text,
  p_email text,
  p_email_verified boolean,
  p_display_name text,
  p_workos_session_id text,
  p_invite_only boolean,
  p_session_ttl_seconds int,
  p_now timestamptz
) returns jsonb
language plpgsql
set search_path = pg_catalog, extensions
as $$
declare
  v_upsert jsonb;
  v_person jsonb;
  v_session identity.session;
begin
  v_upsert := identity.upsert_person(
    p_provider, p_provider_user_id, p_email, p_email_verified, p_display_name, p_invite_only, p_now
  );
  if v_upsert ? 'error' then
    return v_upsert;
  end if;
  v_person := v_upsert -> 'person';

  if (v_upsert ->> 'is_new_user')::boolean then
    perform identity.provision_person(
      (v_person ->> 'id')::uuid,
      v_person ->> 'email',
      true,
      coalesce(nullif(v_person ->> 'display_name', ''), split_part(v_person ->> 'email', '@', 1)),
      p_now
    );
  end if;

  insert into identity.session (person_id, provider, amr_method, workos_session_id, created_at, expires_at)
  values (
    (v_person ->> 'id')::uuid,
    p_provider,
    case p_provider when 'stytch' then 'otp' else 'sso/oauth' end,
    p_workos_session_id,
    p_now,
    p_now + make_interval(secs => p_session_ttl_seconds)
  )
  returning * into v_session;

  return identity.session_payload(v_session)
    || jsonb_build_object('is_new_user', v_upsert -> 'is_new_user');
end
$$;

-- Custom access token hook (Supabase Auth, [auth.hook.custom_access_token] in config.toml):
-- called with {user_id, claims, authentication_method}, answers {claims}. Puts the person's current
-- workspace into app_metadata, so Supabase Auth tokens carry what platform tokens carry; a user
-- with no workspace gets app_metadata without those keys (stale values from raw_app_meta_data are
-- dropped). Runs as supabase_auth_admin with only the grants below (no security definer, as
-- Supabase recommends).
create function identity.custom_access_token_hook(event jsonb)
returns jsonb
language plpgsql stable
set search_path = pg_catalog, extensions
as $$
declare
  v_claims jsonb := coalesce(event -> 'claims', '{}'::jsonb);
  v_app_metadata jsonb;
  v_current record;
begin
  v_app_metadata := case jsonb_typeof(v_claims -> 'app_metadata')
    when 'object' then v_claims -> 'app_metadata'
    else '{}'::jsonb
  end - 'workspace_id' - 'workspace_role';

  select * into v_current from identity.current_workspace((event ->> 'user_id')::uuid);
  if v_current.workspace_id is not null then
    v_app_metadata := v_app_metadata || jsonb_build_object(
      'workspace_id', v_current.workspace_id,
      'workspace_role', v_current.role
    );
  end if;

  return jsonb_build_object('claims', v_claims || jsonb_build_object('app_metadata', v_app_metadata));
end
$$;

-- What Supabase Auth (role supabase_auth_admin) needs to run the hook, and nothing more.
grant usage on schema identity to supabase_auth_admin;
grant execute on function identity.custom_access_token_hook(jsonb) to supabase_auth_admin;
grant execute on function identity.current_workspace(uuid) to supabase_auth_admin;
grant select (workspace_id, person_id, role, created_at) on identity.membership to supabase_auth_admin;
create policy "auth admin reads memberships for token claims" on identity.membership
  for select to supabase_auth_admin
  using (true);

-- ---------------------------------------------------------------------------------------------
-- Database webhook on auth.users -> signup-webhook (INSERT, and UPDATE confirming the email).
--
-- Supabase's supabase_functions.http_request() takes its headers as fixed trigger arguments, so
-- the bearer token would sit in the trigger definition (pg_trigger, readable by every database
-- role) and could not rotate. This trigger function sends the same payload
-- ({type, table, schema, record, old_record}) through pg_net, reading the URL and the token from
-- Supabase Vault at the time it fires:
--   select vault.create_secret('https://<ref>.supabase.co/functions/v1/signup-webhook', 'signup_webhook_url');
--   select vault.create_secret('<the SIGNUP_WEBHOOK_TOKEN value>', 'signup_webhook_token');
-- Without those secrets it sends nothing (a signup never fails for want of it). The record is cut
-- to the columns provisioning reads: password hashes and confirmation tokens never leave the
-- database.
-- ---------------------------------------------------------------------------------------------
create function identity.auth_user_webhook_record(u auth.users)
returns jsonb
language sql stable
set search_path = pg_catalog, extensions
as $$
  select jsonb_build_object(
    'id', u.id,
    'email', u.email,
    'email_confirmed_at', u.email_confirmed_at,
    'phone', u.phone,
    'raw_app_meta_data', u.raw_app_meta_data,
    'raw_user_meta_data', u.raw_user_meta_data,
    'is_anonymous', u.is_anonymous,
    'created_at', u.created_at,
    'updated_at', u.updated_at
  )
$$;

create function identity.send_signup_webhook()
returns trigger
language plpgsql
security definer -- reads Vault and calls pg_net on behalf of supabase_auth_admin, which may do neither
set search_path = pg_catalog, extensions
as $$
declare
  v_url text;
  v_token text;
begin
  select s.decrypted_secret into v_url from vault.decrypted_secrets s where s.name = 'signup_webhook_url';
  select s.decrypted_secret into v_token from vault.decrypted_secrets s where s.name = 'signup_webhook_token';
  if v_url is null or v_token is null then
    raise warning 'signup webhook is not configured: Vault secrets signup_webhook_url and signup_webhook_token are missing';
    return null;
  end if;
  perform net.http_post(
    url := v_url,
    body := jsonb_build_object(
      'type', tg_op,
      'table', tg_table_name,
      'schema', tg_table_schema,
      'record', identity.auth_user_webhook_record(new),
      'old_record', case when tg_op = 'UPDATE' then identity.auth_user_webhook_record(old) end
    ),
    params := '{}'::jsonb,
    headers := jsonb_build_object('content-type', 'application/json', 'authorization', 'Bearer ' || v_token),
    timeout_milliseconds := 5000
  );
  return null;
end
$$;

-- Creates the triggers where Database Webhooks (pg_net, supabase_functions) and Vault exist; on
-- plain Postgres (tests, the local server) it does nothing. Run it again after enabling Database
-- Webhooks on a project migrated before: select identity.install_signup_webhook();
create function identity.install_signup_webhook()
returns text
language plpgsql
set search_path = pg_catalog, extensions
as $$
begin
  if not exists (
    select 1 from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'supabase_functions' and p.proname = 'http_request'
  ) or not exists (
    select 1 from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'net' and p.proname = 'http_post'
  ) or to_regclass('vault.decrypted_secrets') is null then
    return 'skipped: Database Webhooks (pg_net) or Vault is not available';
  end if;
  drop trigger if exists signup_webhook_on_insert on auth.users;
  drop trigger if exists signup_webhook_on_email_confirmed on auth.users;
  create trigger signup_webhook_on_insert
    after insert on auth.users
    for each row execute function identity.send_signup_webhook();
  create trigger signup_webhook_on_email_confirmed
    after update of email_confirmed_at on auth.users
    for each row
    when (old.email_confirmed_at is null and new.email_confirmed_at is not null)
    execute function identity.send_signup_webhook();
  return 'installed';
end
$$;

select identity.install_signup_webhook();

revoke execute on all functions in schema identity from public, anon, authenticated;
