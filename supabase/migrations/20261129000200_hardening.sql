-- Hardening from an outside attack review (SPEC §13).
--
-- §13.3 A leaked access token cannot be renewed for ever: the bearer-only refresh renews only a
--       token of the session's current refresh generation, and never later than 24 h after the
--       session's last sign-in or rotation (identity.live_session, with p_generation, in
--       20261129000400_workspaces.sql, which also accepts invitations there).
-- §13.4 With SUPABASE_EMAIL_CONFIRMATION=off, auth.users.email_confirmed_at proves nothing: such a
--       user's email is not put on the person, links no account and accepts no invitation.
-- §13.7 No function in identity or whatsapp is executable by anon or authenticated, including
--       functions added later: PostgreSQL grants EXECUTE to PUBLIC by default for every new
--       function, and that global default can only be revoked for a role, not per schema (a
--       per-schema `revoke` is a no-op). So it is revoked for the role that runs the migrations.
--       Schemas with their own explicit default grants (Supabase's `public`) keep them.

do $$
begin
  execute format('alter default privileges for role %I revoke execute on functions from public',
    current_user);
end
$$;

-- Policy numbers added or changed here (identity.policy_setting, see 20261129000100_restructure.sql).
insert into identity.policy_setting (name, value, note) values
  ('bearer_renewal_seconds', 60 * 60 * 24, 'bearer-only refresh, after sign-in or rotation')
on conflict (name) do update set value = excluded.value, note = excluded.note;

-- Provisions a Supabase Auth user (same contract as before), with p_email_confirmation_proves:
-- false when Supabase Auth confirms emails without asking the user (SUPABASE_EMAIL_CONFIRMATION=off),
-- so email_confirmed_at proves nothing and the email stays off the person.
drop function identity.provision_auth_user(uuid, timestamptz);
create function identity.provision_auth_user(
  p_user_id uuid,
  p_email_confirmation_proves boolean,
  p_now timestamptz
) returns jsonb
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
  v_confirmed := p_email_confirmation_proves and v_user.email_confirmed_at is not null
    and v_email is not null;
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

  -- An unproven email gets no welcome email either: nobody showed it is theirs.
  v_result := identity.provision_person(
    v_user.id,
    case when v_confirmed or p_email_confirmation_proves then v_email end,
    v_confirmed,
    coalesce(v_name, split_part(v_email, '@', 1)),
    p_now
  );

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

revoke execute on all functions in schema identity from public, anon, authenticated;
revoke execute on all functions in schema whatsapp from public, anon, authenticated;
