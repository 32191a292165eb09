-- An insert into resources now updates resource_counts and resource_blocks itself
-- (store::resources::insert). With a trigger on INSERT, SQLite kept a statement journal for
-- every insert: a copy of each page the statement touched, made in case it had to be undone.
-- The DELETE triggers stay: deletes are rare, and a removed provider's resources go by cascade.
DROP TRIGGER resources_counted;
DROP TRIGGER resources_blocked;
