use strict;
use warnings;
use Test::More;
use File::Find ();

# Pins: the POD of every module, of the cookbook and of the command-line
# tool parses; the SYNOPSIS of the main page, of each variant page and of
# the tie class compiles (under strict and warnings, without running); each
# variant page says what it maps and points to the main page.

my @VARIANTS = qw(I16 I32 II I16S I32S IS SI16 SI32 SI SS);

my @pod_files = ('bin/hashmap-shared');
File::Find::find({ no_chdir => 1, wanted => sub {
    push @pod_files, $File::Find::name if /\.(?:pm|pod)\z/;
} }, 'lib');
@pod_files = sort @pod_files;
ok(scalar(grep { m{/Cookbook\.pod\z} } @pod_files), 'the cookbook is among the POD files');

SKIP: {
    skip 'Test::Pod 1.22 required', scalar @pod_files
        unless eval { require Test::Pod; Test::Pod->VERSION(1.22); 1 };
    Test::Pod::pod_file_ok($_, "POD of $_") for @pod_files;
}

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or die "$file: $!";
    local $/;
    return scalar <$fh>;
}

# The verbatim paragraphs of the SYNOPSIS section, de-indented.
sub synopsis_of {
    my ($file) = @_;
    my ($section) = slurp($file) =~ /^=head1 SYNOPSIS\n(.*?)^=(?:head1|cut)\b/ms
        or return;
    my @lines = split /\n/, $section, -1;
    my ($indent) = sort { $a <=> $b } map { /^( +)\S/ ? length $1 : () } @lines;
    return unless defined $indent;
    return join "\n", map { /^ {$indent}(.*)\z/ ? $1 : /^\s*\z/ ? '' : "# not verbatim: $_" } @lines;
}

my %synopsis_file = (
    'Data::HashMap::Shared'      => 'lib/Data/HashMap/Shared.pm',
    'Data::HashMap::Shared::Tie' => 'lib/Data/HashMap/Shared/Tie.pm',
    map { ("Data::HashMap::Shared::$_" => "lib/Data/HashMap/Shared/$_.pm") } @VARIANTS,
);

my $n = 0;
for my $module (sort keys %synopsis_file) {
    my $file = $synopsis_file{$module};
    my $code = synopsis_of($file);
    ok(defined $code && $code =~ /\S/, "$module has a SYNOPSIS") or next;
    unlike($code, qr/^# not verbatim:/m, "$module: SYNOPSIS is all code");
    $n++;
    # Compiled, never run: a sub that nobody calls.
    my $sub = eval "package SynopsisCheck$n;\nuse strict;\nuse warnings;\n"
        . "#line 1 \"$file SYNOPSIS\"\nsub {\n$code\n;}";
    ok(ref $sub eq 'CODE', "$module: SYNOPSIS compiles") or diag $@;
}

for my $v (@VARIANTS) {
    my $pod = slurp("lib/Data/HashMap/Shared/$v.pm");
    my ($key, $value) = $pod =~ /^Data::HashMap::Shared::$v - \S.* from (.+?) keys to (.+?) values$/m;
    ok(defined $value, "$v: NAME says what it maps ($key => $value)");
    like($pod, qr/L<Data::HashMap::Shared>/, "$v: points to the main page");
}

# The main page documents what exists and does not call it missing.
my $main = slurp('lib/Data/HashMap/Shared.pm');
for my $section ('CHOOSING A VARIANT', 'TIED HASHES', 'COMMAND-LINE TOOL', 'SEE ALSO') {
    like($main, qr/^=head1 \Q$section\E$/m, "main page has $section");
}
for my $module (qw(Hash::SharedMem Cache::FastMmap LMDB_File BerkeleyDB IPC::Shareable)) {
    like($main, qr/^=item L<\Q$module\E>$/m, "SEE ALSO discusses $module");
}
my ($not_yet) = $main =~ /^=head1 NOT YET AVAILABLE\n(.*?)^=head1/ms;
require Data::HashMap::Shared;
for my $method (qw(new_memfd new_from_fd new_sharded new_readonly sync freeze frozen readonly verify)) {
    my $exists  = Data::HashMap::Shared::II->can($method) ? 1 : 0;
    my $listed  = defined $not_yet && $not_yet =~ /C<\Q$method\E>/ ? 1 : 0;
    ok($exists != $listed, "NOT YET AVAILABLE is right about $method ("
        . ($exists ? 'exists' : 'missing') . ')');
    like($main, qr/^=head2 (?:.*\W)?\Q$method\E\b/m, "$method is documented") if $exists;
}

done_testing;
