#!/usr/bin/env perl
# A leaderboard: game servers in several processes report scores, and
# max keeps each player's best, atomically (no read-compare-write race
# between processes). Anyone can read the standings at any time.
use strict;
use warnings;
use Data::HashMap::Shared::SI;
use File::Temp ();
use POSIX ();

my @PLAYERS = qw(alice bob carol dave erin frank grace heidi);
my $SERVERS = 4;
my $GAMES   = 500;    # per server

my $dir  = File::Temp->newdir(-d '/dev/shm' ? (DIR => '/dev/shm') : ());
my $best = Data::HashMap::Shared::SI->new("$dir/best.map", 10_000);

sub score {           # a made-up but repeatable game result
    my ($server, $game) = @_;
    return ($server * 7919 + $game * 104_729) % 10_007;
}

my @pids;
for my $s (1 .. $SERVERS) {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        alarm 30;
        for my $g (1 .. $GAMES) {
            my $player = $PLAYERS[ ($s + $g) % @PLAYERS ];
            shm_si_max $best, $player, score($s, $g);    # returns the best so far
            shm_si_incr $best, "games:$player";
        }
        POSIX::_exit(0);
    }
    push @pids, $pid;
}
for my $pid (@pids) {
    waitpid $pid, 0;
    die "server $pid failed: $?\n" if $?;
}

my %best  = %{ shm_si_to_hash $best };    # one consistent snapshot
my @top   = (sort { $best{$b} <=> $best{$a} || $a cmp $b } @PLAYERS)[0 .. 2];
my $place = 0;
printf "%d. %-6s %5d (%d games)\n", ++$place, $_, $best{$_}, $best{"games:$_"} for @top;

# check against the same games scored in one process
my %expect;
for my $s (1 .. $SERVERS) {
    for my $g (1 .. $GAMES) {
        my $player = $PLAYERS[ ($s + $g) % @PLAYERS ];
        my $score  = score($s, $g);
        $expect{$player} = $score if !defined $expect{$player} || $score > $expect{$player};
    }
}
my $same = !grep { $best{$_} != $expect{$_} } @PLAYERS;
print 'matches a single-process run: ', ($same ? 'yes' : 'no'), "\n";
exit($same ? 0 : 1);
