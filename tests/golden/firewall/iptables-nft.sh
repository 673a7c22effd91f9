# The commands behind iptables-nft.json (iptables v1.8.9 (nf_tables), nft 1.0.6), in an
# empty network namespace; then: nft -j list ruleset
iptables-nft -P INPUT DROP
iptables-nft -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
iptables-nft -A INPUT -i lo -j ACCEPT
iptables-nft -A INPUT -p 4 -j ACCEPT
iptables-nft -A INPUT -i eth0 -p udp --dport 19523 -j ACCEPT
iptables-nft -A INPUT -p gre -j ACCEPT
iptables-nft -A INPUT -s 10.0.0.0/8 -p ipencap -j ACCEPT
iptables-nft -A INPUT -p udp -m multiport --dports 4790,19523 -j ACCEPT
iptables-nft -A INPUT -p tcp --dport 22 -j ACCEPT
ip6tables-nft -P INPUT DROP
ip6tables-nft -A INPUT -p 41 -j ACCEPT
