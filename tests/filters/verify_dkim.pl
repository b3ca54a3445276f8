#!/usr/bin/perl
# An independent DKIM verifier for the tests: Perl's Mail::DKIM, with its DNS replaced by a file
# of "name<TAB>TXT value" lines (the tests' static DNS table). Reads the message on stdin and
# prints one line per signature: "<result> d=<domain> s=<selector> a=<algorithm>".
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Mail::DKIM::DNS;
use Net::DNS;

my %records;
open(my $keys, '<', $ARGV[0]) or die "cannot read $ARGV[0]: $!";
while (my $line = <$keys>) {
    chomp $line;
    my ($name, $value) = split /\t/, $line, 2;
    $records{lc $name} = $value;
}
close $keys;

{
    no warnings 'redefine';
    *Mail::DKIM::DNS::query = sub {
        my ($domain, $type) = @_;
        my $value = $records{lc $domain};
        unless (defined $value && $type eq 'TXT') {
            $@ = 'NXDOMAIN';
            return ();
        }
        return (Net::DNS::RR->new(name => $domain, type => 'TXT', txtdata => $value));
    };
}

binmode STDIN;
my $dkim = Mail::DKIM::Verifier->new();
while (my $line = <STDIN>) {
    $line =~ s/\r?\n\z/\r\n/;
    $dkim->PRINT($line);
}
$dkim->CLOSE();
foreach my $signature ($dkim->signatures) {
    printf "%s d=%s s=%s a=%s\n", $signature->result, $signature->domain,
        $signature->selector, $signature->algorithm;
}
