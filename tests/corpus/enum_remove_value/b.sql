create type mood as enum ('ok', 'sad');
create table person (id serial primary key, m mood);
