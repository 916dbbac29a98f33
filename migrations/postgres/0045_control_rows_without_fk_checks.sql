-- The control service appends two rows for every agent state change (control_applied,
-- agent_transitions): at 20,000 changes a second on a floor that is 40,000 foreign-key checks a
-- second against one and the same tenants row (a trigger and an index probe each, with a row lock
-- on the tenant); 200,000 rows into a copy of agent_transitions took 40 % longer with the check
-- (bench/RESULTS.md, "Control service throughput", 2026-12-08). Their writer is the tenant's own control service, fenced by the
-- tenant's lease, so the check can only ever pass; what the foreign key also gave, the rows going
-- with a deleted tenant, a trigger on tenants keeps, at no cost to the writes.
ALTER TABLE agent_transitions DROP CONSTRAINT agent_transitions_tenant_id_fkey;
ALTER TABLE control_applied DROP CONSTRAINT control_applied_tenant_id_fkey;

CREATE FUNCTION tenants_delete_control_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM agent_transitions WHERE tenant_id = OLD.id;
    DELETE FROM control_applied WHERE tenant_id = OLD.id;
    RETURN OLD;
END;
$$;

CREATE TRIGGER tenants_delete_control_rows AFTER DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION tenants_delete_control_rows();
