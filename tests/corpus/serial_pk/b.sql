create table t (id serial primary key, name text);
create table u (id serial primary key, small smallserial, big bigserial, t_id integer references t (id));
